"""Convert a PyTorch checkpoint to the safetensors file sagitta loads.

    python3 -m sagitta_ref.convert CHECKPOINT.pt OUT.safetensors --config CONFIG.json \
        [--dtype f32|f16|bf16] [--trust-checkpoint]
    python3 -m sagitta_ref.convert --part identify=CNN1.pt --part locate=CNN2.pt \
        --part refine=CNN3.pt OUT.safetensors --config CONFIG.json

A model trained as separate networks (the lumbar model's three CNNs) converts from one
checkpoint per network: `--part PREFIX=CHECKPOINT` puts that checkpoint's keys under PREFIX.
Keys that only training uses (the architecture's `training_only` prefixes, e.g. Inception3's
`AuxLogits.*` and `fc.*`) are dropped, and the conversion says how many.

The config's "arch" picks the model class and its metadata writer from the registry
(sagitta_ref.models.ARCHITECTURES; "cervical-hourglass-dsnt" is CervicalModel). The checkpoint is a
state_dict, or a dict holding one under "state_dict" or "model"; a leading "module."
(DataParallel) is stripped and BatchNorm's num_batches_tracked dropped. The keys must be exactly
those of the model built from the config (cervical: "global_net.*", "refiners.{k}.*"). The config
goes into the file's metadata as JSON under "sagitta", with "format" = "pt".

A Keras `.h5` file (VGG16-style layer names, needs h5py; "csm-vgg16" only) converts by layer
name: `block{b}_conv{c}` -> torchvision's `features.N` with kernels HWIO -> OIHW, and the dense
layers in file order -> `classifier.{0,2,4}` with kernels [in, out] transposed. Keras "same"
padding of a 3x3 stride-1 conv is padding 1, as in torchvision. The file's metadata then says
"format" = "keras-h5".
"""

from __future__ import annotations

import argparse
import json
import sys

import torch
from torch import nn

from . import st_io
from .models import ARCHITECTURES, UnknownArchitecture, architecture

DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}


class CheckpointError(ValueError):
    pass


def extract_state_dict(obj) -> dict[str, torch.Tensor]:
    """The state_dict inside a loaded checkpoint, with "module." stripped."""
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if key in obj and isinstance(obj[key], (dict, nn.Module)):
                return extract_state_dict(obj[key])
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError("checkpoint is not a state_dict (nor holds one under "
                              "'state_dict' or 'model')")
    out = {}
    for k, v in obj.items():
        out[k[len("module."):] if k.startswith("module.") else k] = v
    return out


def clean_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}


def expected_shapes(config: dict) -> dict[str, torch.Size]:
    model = architecture(config.get("arch")).model(config)
    return {k: v.shape for k, v in clean_state_dict(model.state_dict()).items()}


def check_keys(sd: dict[str, torch.Tensor], config: dict) -> None:
    """Raise CheckpointError naming missing / unexpected keys and shape mismatches."""
    want = expected_shapes(config)
    missing = sorted(set(want) - set(sd))
    unexpected = sorted(set(sd) - set(want))
    wrong = sorted(f"{k}: {tuple(sd[k].shape)} != expected {tuple(want[k])}"
                   for k in set(want) & set(sd) if sd[k].shape != want[k])
    if missing or unexpected or wrong:
        model = architecture(config.get("arch")).model.__name__
        lines = [f"checkpoint does not match {model}(config {config.get('name')!r}):"]
        for title, items in (("missing", missing), ("unexpected", unexpected),
                             ("wrong shape", wrong)):
            if items:
                shown = items[:20] + ([f"... and {len(items) - 20} more"] if len(items) > 20 else [])
                lines.append(f"  {len(items)} {title} keys:")
                lines += [f"    {s}" for s in shown]
        raise CheckpointError("\n".join(lines))


def to_file_tensors(sd: dict[str, torch.Tensor], dtype: str) -> dict[str, torch.Tensor]:
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, not {dtype!r}")
    target = DTYPES[dtype]
    out = {}
    for k, v in sd.items():
        v = v.detach().cpu()
        if v.is_floating_point():
            v = v.to(target)
        out[k] = v.contiguous()
    return out


def file_metadata(config: dict, fmt: str = "pt") -> dict[str, str]:
    """The weights file's metadata: "format" (the source: "pt", "keras-h5") and the arch's
    entries for `config`."""
    return {"format": fmt, **architecture(config.get("arch")).config_to_metadata(config)}


def drop_training_only(sd: dict[str, torch.Tensor], config: dict) -> tuple[dict, int]:
    """`sd` without the keys under the architecture's training-only prefixes, and their count."""
    prefixes = architecture(config.get("arch")).training_only
    kept = {k: v for k, v in sd.items() if not k.startswith(prefixes)} if prefixes else sd
    return kept, len(sd) - len(kept)


def save_state_dict(sd: dict[str, torch.Tensor], config: dict, path: str, dtype: str = "f32",
                    fmt: str = "pt"):
    sd, _ = drop_training_only(clean_state_dict(sd), config)
    check_keys(sd, config)
    metadata = file_metadata(config, fmt)
    st_io.save_file(to_file_tensors(sd, dtype), path, metadata)


def save_model(model: nn.Module, config: dict, path: str, dtype: str = "f32"):
    """Write `model`'s weights (BN running stats included) as `dtype` with `config` in metadata."""
    save_state_dict(model.state_dict(), config, path, dtype)


def load_model(path: str, dtype: torch.dtype = torch.float32) -> tuple[nn.Module, dict]:
    """Read a file written by save_model back into its arch's model (weights cast to `dtype`)."""
    from safetensors import safe_open

    with safe_open(path, framework="pt") as f:
        text = (f.metadata() or {}).get("sagitta")
        if text is None:
            raise CheckpointError(f"{path}: no 'sagitta' config in the metadata")
        entry = architecture(json.loads(text).get("arch"))
        config = entry.config_from_json(text)
        sd = {k: f.get_tensor(k).to(dtype) for k in f.keys()}
    model = entry.model(config)
    check_keys(sd, config)
    model.load_state_dict(sd, strict=False)  # num_batches_tracked is not in the file
    return model, config


def keras_h5_state_dict(path: str, config: dict) -> dict[str, torch.Tensor]:
    """The torchvision-named state dict of a Keras VGG16-style `.h5` weights file (a whole model
    saved with `model.save` or weights only with `save_weights`)."""
    import h5py

    from .models import csm

    if config.get("arch") != csm.ARCH:
        raise CheckpointError(f"Keras .h5 conversion knows only {csm.ARCH!r}, not "
                              f"{config.get('arch')!r}")
    conv_index = {}
    layers = iter(csm.feature_layers(config["width"]))
    for b, (convs, _) in enumerate(csm.STAGES, start=1):
        for c in range(1, convs + 1):
            conv_index[f"block{b}_conv{c}"] = next(layers)[0]

    def weights_of(group) -> dict[str, torch.Tensor]:
        names = [n.decode() if isinstance(n, bytes) else n
                 for n in group.attrs.get("weight_names", [])]
        if not names:
            found = []
            group.visititems(lambda n, o: found.append(n) if isinstance(o, h5py.Dataset) else None)
            names = found
        out = {}
        for n in names:
            leaf = n.split("/")[-1].split(":")[0]
            out[leaf] = torch.from_numpy(group[n][()].copy()).float()
        return out

    sd: dict[str, torch.Tensor] = {}
    with h5py.File(path, "r") as f:
        root = f["model_weights"] if "model_weights" in f else f
        order = [n.decode() if isinstance(n, bytes) else n
                 for n in root.attrs.get("layer_names", list(root.keys()))]
        dense = 0
        for name in order:
            w = weights_of(root[name])
            if not w:
                continue  # input, pooling, flatten, dropout
            if "kernel" not in w or "bias" not in w:
                raise CheckpointError(f"{path}: layer {name!r} has {sorted(w)}, expected "
                                      "kernel and bias")
            kernel, bias = w["kernel"], w["bias"]
            if name in conv_index:
                if kernel.dim() != 4:
                    raise CheckpointError(f"{path}: {name} kernel {tuple(kernel.shape)} not HWIO")
                key = f"features.{conv_index[name]}"
                sd[f"{key}.weight"] = kernel.permute(3, 2, 0, 1).contiguous()
            elif kernel.dim() == 2:
                key = f"classifier.{2 * dense}"
                dense += 1
                sd[f"{key}.weight"] = kernel.t().contiguous()
            else:
                raise CheckpointError(f"{path}: unexpected layer {name!r} with a "
                                      f"{tuple(kernel.shape)} kernel")
            sd[f"{key}.bias"] = bias
    return sd


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m sagitta_ref.convert", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", nargs="?",
                    help="the whole model's checkpoint (or give --part for each network)")
    ap.add_argument("out")
    ap.add_argument("--part", action="append", default=[], metavar="PREFIX=CHECKPOINT",
                    help="a network trained on its own: its keys go under PREFIX (repeat)")
    ap.add_argument("--config", required=True,
                    help="JSON file with the model config; its \"arch\" is one of "
                         + ", ".join(sorted(ARCHITECTURES)))
    ap.add_argument("--dtype", default="f32", choices=sorted(DTYPES))
    ap.add_argument("--trust-checkpoint", action="store_true",
                    help="unpickle arbitrary objects (torch.load weights_only=False); only for "
                         "checkpoints you trust")
    args = ap.parse_args(argv)

    with open(args.config) as f:
        config = json.load(f)
    try:
        architecture(config.get("arch"))
    except UnknownArchitecture as e:
        print(f"error: {args.config}: {e}", file=sys.stderr)
        return 1
    if args.checkpoint and args.checkpoint.endswith((".h5", ".hdf5", ".keras")):
        try:
            sd = keras_h5_state_dict(args.checkpoint, config)
            save_state_dict(sd, config, args.out, args.dtype, fmt="keras-h5")
        except CheckpointError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        print(f"wrote {args.out}: {len(sd)} tensors from Keras layers, {args.dtype}, "
              f"config {config.get('name')!r}")
        return 0
    sources = [("", args.checkpoint)] if args.checkpoint else []
    for part in args.part:
        prefix, sep, path = part.partition("=")
        if not sep or not prefix or not path:
            print(f"error: --part {part!r} is not PREFIX=CHECKPOINT", file=sys.stderr)
            return 1
        sources.append((prefix.rstrip(".") + ".", path))
    if not sources:
        print("error: give a checkpoint or --part PREFIX=CHECKPOINT", file=sys.stderr)
        return 1
    sd: dict[str, torch.Tensor] = {}
    for prefix, path in sources:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=not args.trust_checkpoint)
        except Exception as e:  # noqa: BLE001
            print(f"error: cannot load {path}: {e}\n(if the checkpoint pickles other "
                  "objects and you trust it, pass --trust-checkpoint)", file=sys.stderr)
            return 1
        try:
            part = clean_state_dict(extract_state_dict(obj))
        except CheckpointError as e:
            print(f"error: {path}: {e}", file=sys.stderr)
            return 1
        clash = sorted(set(sd) & {prefix + k for k in part})
        if clash:
            print(f"error: {path}: keys given twice, e.g. {clash[0]!r}", file=sys.stderr)
            return 1
        sd.update({prefix + k: v for k, v in part.items()})
    try:
        sd, dropped = drop_training_only(sd, config)
        save_state_dict(sd, config, args.out, args.dtype)
    except CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    note = f" ({dropped} training-only tensors dropped)" if dropped else ""
    print(f"wrote {args.out}: {len(sd)} tensors{note}, {args.dtype}, "
          f"config {config.get('name')!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
