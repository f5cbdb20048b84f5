"""`firstnet explain [RUN] IMAGE`: which pixels of your picture pushed the network towards its answer, and which against."""

import pathlib

from firstnet.cli import common

HELP = "why this answer: the pixels that pushed it, drawn over your picture"


def add_flags(parser):
    # RUN comes first, as in `firstnet fool RUN` and `firstnet look RUN`; given one path, it is the picture and the
    # newest run answers, as in `firstnet predict`.
    parser.add_argument("run", nargs="?", metavar="RUN", help="a run folder or model.keras (default: the newest run)")
    parser.add_argument("image", metavar="IMAGE", help="a picture (PNG, JPEG, BMP, GIF or WebP): a photo or a drawing")
    parser.add_argument("--out", type=common.png_path, metavar="OUT.png",
                        help="where to save the picture (default: <image name>_explained.png in the current folder)")


def run(args):
    from firstnet import explain, files, images

    model_path, model, _ = common.load_digit_run(args.run, "explain")
    (image,) = images.image_files([args.image])
    prepared = images.prepare_file(image)
    explanation = explain.explain(model, prepared)
    # The current folder, not the image's: the learner finds it where they typed, and may not own the image's folder.
    out = pathlib.Path(args.out) if args.out else pathlib.Path(f"{image.stem}_explained.png")
    files.write_bytes(out, explain.explanation_png(prepared, explanation))
    print(f"{image}: {explanation['digit']} (probability {explanation['probability']:.3f}) by {model_path}; "
          f"why, by {explain.METHOD}")
    print(f"saved {out} (red: pixels that pushed towards {explanation['digit']}, blue: against)")
