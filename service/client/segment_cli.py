"""`samsvc segment`: embed an image and prompt it on the running stack; write an overlay PNG and/or JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from service.client.settings import ClientSettings
from service.settings import add_settings


def _point(text: str) -> tuple[float, float, int]:
    parts = text.split(",")
    if len(parts) not in (2, 3):
        raise argparse.ArgumentTypeError(f"{text!r}: expected x,y or x,y,label")
    try:
        label = int(parts[2]) if len(parts) == 3 else 1
        return (float(parts[0]), float(parts[1]), label)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r}: {error}") from None


def _box(text: str) -> tuple[float, float, float, float]:
    parts = text.split(",")
    if len(parts) != 4:
        raise argparse.ArgumentTypeError(f"{text!r}: expected x0,y0,x1,y1")
    try:
        x0, y0, x1, y1 = (float(part) for part in parts)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r}: {error}") from None
    return (x0, y0, x1, y1)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "segment",
        help="Segment one object in an image on the running stack; write an overlay PNG and/or JSON.",
        description=(
            "Embeds IMAGE with the encoder, sends the prompt to the decoder, and writes an overlay of the best mask "
            "(--all: the three masks with their scores; --everything: every mask of the image, no prompt) to --out, "
            "and/or prints JSON (scores, bbox, area and each mask as COCO RLE or, with --polygons, as polygons)."
        ),
    )
    parser.add_argument("image", type=Path, help="the image file")
    parser.add_argument(
        "--point", type=_point, action="append", default=[], metavar="X,Y[,LABEL]",
        help="a click in image pixels; LABEL 1 foreground (default) or 0 background; repeatable",
    )  # fmt: skip
    parser.add_argument("--box", type=_box, metavar="X0,Y0,X1,Y1", help="a box around the object, in image pixels")
    parser.add_argument("--out", type=Path, help="write the overlay PNG here")
    parser.add_argument("--all", action="store_true", help="ask for three masks and draw them all with their scores")
    parser.add_argument("--json", action="store_true", help="print the answer as JSON on stdout")
    parser.add_argument(
        "--everything",
        action="store_true",
        help="segment everything instead of one object (Decoder/SegmentEverything, SAM's automatic mask generator): "
        "no prompt; --out draws every mask in its own colour, --json lists them with the point that gave each",
    )
    parser.add_argument(
        "--points-per-side", type=int, default=32, metavar="N", help="with --everything: an N x N point grid (32)"
    )
    parser.add_argument(
        "--pred-iou-thresh", type=float, metavar="T", help="with --everything: keep masks scored above T (0.88)"
    )
    parser.add_argument(
        "--stability-score-thresh", type=float, metavar="T", help="with --everything: keep masks this stable (0.95)"
    )
    parser.add_argument(
        "--polygons",
        action="store_true",
        help='ask for masks as polygons (MASK_FORMAT_POLYGON); the JSON then has "polygons": [{"exterior": '
        '[x0, y0, x1, y1, ...], "holes": [[...], ...]}, ...] in pixel corners instead of "rle"',
    )
    parser.add_argument(
        "--polygon-tolerance",
        type=float,
        default=0.0,
        metavar="PIXELS",
        help="with --polygons: simplify each ring to within this many pixels (default: 0, the exact boundary)",
    )
    add_settings(parser, ClientSettings)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import grpc

    from service._proto.sam.v1 import sam_pb2
    from service.client import RequestError, SamClient, make_prompt, mask_of
    from service.client.overlay import overlay_all, overlay_best
    from service.logs import configure_logging
    from service.settings import settings_from_args

    settings = settings_from_args(ClientSettings, args)
    configure_logging(settings.log_level, settings.log_format)
    if args.everything:
        return run_everything(args, settings)
    if not args.point and args.box is None:
        print("give at least one --point or a --box", file=sys.stderr)
        return 2
    if args.out is None and not args.json:
        print("nothing to do: give --out PATH and/or --json", file=sys.stderr)
        return 2
    image_bytes = args.image.read_bytes()
    try:
        credentials = client_credentials(settings)
    except ValueError as error:
        print(f"samsvc segment: {error}", file=sys.stderr)
        return 2
    try:
        with SamClient(
            settings.encoder, settings.decoder, token=settings.auth_token or "", credentials=credentials
        ) as client:
            image = client.embed(image_bytes, timeout_seconds=settings.timeout_seconds)
            with client.open_stream(timeout_seconds=settings.timeout_seconds) as stream:
                answer = stream.segment(
                    image,
                    [make_prompt(points=args.point, box=args.box)],
                    multimask_output=args.all,
                    mask_format=sam_pb2.MASK_FORMAT_POLYGON if args.polygons else sam_pb2.MASK_FORMAT_RLE,
                    polygon_tolerance=args.polygon_tolerance,
                )
    except grpc.RpcError as error:
        print(f"samsvc segment: {error.code().name}: {error.details()}", file=sys.stderr)
        return 1
    except RequestError as error:
        print(f"samsvc segment: {error} (field {error.field or '-'})", file=sys.stderr)
        return 1
    masks_proto = list(answer.objects[0].masks)
    masks = [mask_of(mask) for mask in masks_proto]
    scores = [mask.score for mask in masks_proto]
    if args.out is not None:
        rgb = image_to_draw_on(image_bytes)
        if rgb is None:
            return 1
        draw = overlay_all if args.all else overlay_best
        draw(rgb, masks, scores, list(args.point), args.box).save(args.out, format="PNG")
    if args.json:
        print(json.dumps(answer_json(image.image_key, image.original_size, image.model, masks_proto)))
    return 0


def image_to_draw_on(image_bytes: bytes) -> Any:
    """The image's (H, W, 3) pixels, or None (the reason printed) when they cannot be decoded here."""
    from service.errors import ServiceError
    from service.runtime.image_file import decode_image

    try:
        return decode_image(image_bytes)
    except ServiceError as error:
        print(f"samsvc segment: cannot draw on the image: {error}", file=sys.stderr)
        return None


def client_credentials(settings: ClientSettings) -> Any:
    """TLS channel credentials from the client's settings, or None for plaintext; ValueError for unreadable files."""
    if not settings.uses_tls:
        return None
    from service.rpc.tls import channel_credentials

    return channel_credentials(settings.tls_ca_file, settings.tls_cert_file, settings.tls_key_file)


def run_everything(args: argparse.Namespace, settings: ClientSettings) -> int:
    """`samsvc segment --everything`: every mask of the image, drawn in distinct colours and/or as JSON."""
    import grpc

    from service._proto.sam.v1 import sam_pb2
    from service.client import SamClient, mask_of
    from service.client.overlay import overlay_everything

    if args.out is None and not args.json:
        print("nothing to do: give --out PATH and/or --json", file=sys.stderr)
        return 2
    image_bytes = args.image.read_bytes()

    def progress(update: sam_pb2.EverythingProgress) -> None:
        print(
            f"\rpoints {update.points_done}/{update.points_total}, masks kept {update.masks_kept}",
            end="" if update.points_done < update.points_total else "\n",
            file=sys.stderr,
            flush=True,
        )

    try:
        with SamClient(
            settings.encoder,
            settings.decoder,
            token=settings.auth_token or "",
            credentials=client_credentials(settings),
        ) as client:
            image = client.embed(image_bytes, timeout_seconds=settings.timeout_seconds)
            masks_proto = client.segment_everything(
                image,
                timeout_seconds=settings.timeout_seconds,
                on_progress=progress,
                points_per_side=args.points_per_side,
                pred_iou_thresh=args.pred_iou_thresh,
                stability_score_thresh=args.stability_score_thresh,
                mask_format=sam_pb2.MASK_FORMAT_POLYGON if args.polygons else sam_pb2.MASK_FORMAT_RLE,
                polygon_tolerance=args.polygon_tolerance,
            )
    except ValueError as error:
        print(f"samsvc segment: {error}", file=sys.stderr)
        return 2
    except grpc.RpcError as error:
        print(f"samsvc segment: {error.code().name}: {error.details()}", file=sys.stderr)
        return 1
    if args.out is not None:
        rgb = image_to_draw_on(image_bytes)
        if rgb is None:
            return 1
        overlay_everything(rgb, [mask_of(mask.mask) for mask in masks_proto]).save(args.out, format="PNG")
    if args.json:
        answer = answer_json(image.image_key, image.original_size, image.model, [mask.mask for mask in masks_proto])
        for entry, mask in zip(answer["masks"], masks_proto, strict=True):
            entry["point"] = [mask.point.x, mask.point.y]
        print(json.dumps(answer))
    return 0


def answer_json(image_key: str, original_size: tuple[int, int], model: str, masks: list[Any]) -> dict[str, Any]:
    """The answer for one object as plain JSON: scores, bbox, area and each mask as COCO RLE
    ({"size": [h, w], "counts": [...]}) or polygons ([{"exterior": [x0, y0, ...], "holes": [[...]]}])."""
    return {
        "image_key": image_key,
        "model": model,
        "original_size": {"height": original_size[0], "width": original_size[1]},
        "masks": [
            {
                "score": round(float(mask.score), 6),
                "stability_score": round(float(mask.stability_score), 6),
                "area": int(mask.area),
                "bbox": [mask.bbox.x, mask.bbox.y, mask.bbox.width, mask.bbox.height],
                **_pixels_json(mask),
            }
            for mask in masks
        ],
    }


def _pixels_json(mask: Any) -> dict[str, Any]:
    if mask.WhichOneof("encoding") == "polygons":
        return {
            "polygons": [
                {
                    "exterior": list(polygon.exterior.coordinates),
                    "holes": [list(hole.coordinates) for hole in polygon.holes],
                }
                for polygon in mask.polygons.polygons
            ]
        }
    return {"rle": {"size": [mask.rle.size.height, mask.rle.size.width], "counts": list(mask.rle.counts)}}
