"""`firstnet serve`: the draw-a-digit web page, on this computer."""

from firstnet.cli import common

HELP = "the draw-a-digit web page, on this computer"


def add_flags(parser):
    parser.add_argument("--model", metavar="RUN_DIR", help="a run folder or model.keras (default: the newest run)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this computer only)")
    parser.add_argument("--port", type=common.port_number, default=8000,
                        help="port to listen on (default 8000; 0: any free port)")
    parser.add_argument("--root", default="runs", help="folder holding the runs (default runs)")
    parser.add_argument("--train", action="store_true",
                        help="with no trained model yet, train one now with the tutorial's recipe (the page shows progress)")
    common.add_data_flag(parser)
    parser.add_argument("--collection", metavar="DIR", help="the class's digits, added on the page (default: collection/)")
    parser.add_argument("--allow-host", metavar="NAME", action="append", default=[],
                        help="a name this server answers to besides its addresses (e.g. teacher-laptop.local); repeatable")
    parser.add_argument("--review-first", action="store_true",
                        help="students' pictures wait for the teacher's review before they join the collection")


def run(args):
    from firstnet.web import server

    server.serve(model=args.model, host=args.host, port=args.port, runs_root=args.root, train=args.train, data=args.data,
                 collection=args.collection, allow_hosts=args.allow_host, review_first=args.review_first)
