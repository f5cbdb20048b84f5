"""`firstnet kit DIR`: a folder (a USB stick) that installs firstnet and the full MNIST on laptops with no internet."""

HELP = "make a folder (a USB stick) that installs firstnet and the full MNIST on laptops with no internet"


def add_flags(parser):
    parser.add_argument("folder", metavar="DIR", help="a new or empty folder for the kit")
    parser.add_argument("--no-deps", action="store_true",
                        help="only firstnet's own wheel, no downloads (a quick check; laptops then need the other packages)")


def run(args):
    from firstnet import kit

    made = kit.make_kit(args.folder, dependencies=not args.no_deps)
    size = sum(path.stat().st_size for path in made["folder"].rglob("*") if path.is_file())
    print(f"kit: {made['folder']}/ ({size / 2**20:.0f} MB): {len(made['wheels'])} wheel{'' if len(made['wheels']) == 1 else 's'} for {made['platform']}, "
          f"Python {made['python']}; mnist.npz; install.sh, install.ps1, README.txt")
    if not made["dependencies"]:
        print("note: --no-deps: only firstnet's own wheel is in it; laptops need the other packages already")
    print(f"on each laptop, with no network: sh {made['folder']}/install.sh   then   firstnet train")
