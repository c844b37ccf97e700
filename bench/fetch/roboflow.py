"""RF100-VL through the `rf100vl` package (Roboflow), which stays optional: it is imported only here, when asked.

The package writes one folder per data set (train/valid/test with _annotations.coco.json) under the path it is
given, and removes Roboflow's dummy category 0 as it goes. It needs a Roboflow API key; without one it would
open an interactive login, so this refuses first and says what to do.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from bench.util.errors import UserError

KEY_VAR = "ROBOFLOW_API_KEY"


def missing_steps(function: str) -> list[str]:
    """What the user must do before `function` can run (empty when nothing)."""
    steps = []
    try:
        module = importlib.import_module("rf100vl")
    except ImportError:
        steps.append("install the rf100vl package: `pip install rf100vl` (it brings the roboflow client; "
                     "glip-bench does not need it otherwise)")
    else:
        if not callable(getattr(module, function, None)):
            steps.append(f"upgrade rf100vl: the installed version has no {function}() (`pip install -U rf100vl`)")
    if not os.environ.get(KEY_VAR):
        steps.append(f"set your Roboflow API key (free with a Roboflow account, under its settings): "
                     f"`export {KEY_VAR}=<key>`")
    return steps


def require(function: str, dest: Path, what: str) -> None:
    """Refuse, listing the steps, when `function` cannot run here."""
    steps = missing_steps(function)
    if steps:
        raise UserError(f"{what} downloads through the rf100vl package from Roboflow. To fetch it: "
                        + "; ".join(f"({i}) {s}" for i, s in enumerate(steps, 1))
                        + f"; then run the same command again (it writes {dest})")


def download(function: str, dest: Path, what: str) -> Path:
    """Run `rf100vl.<function>(path=dest)`; data sets already in `dest` are kept (overwrite=False)."""
    require(function, dest, what)
    module = importlib.import_module("rf100vl")
    dest.mkdir(parents=True, exist_ok=True)
    try:
        getattr(module, function)(path=str(dest), overwrite=False, api_key=os.environ[KEY_VAR])
    except OSError as e:  # requests' connection errors are OSErrors
        raise UserError(f"{what}: the Roboflow download failed ({type(e).__name__}: {e}); check the connection and "
                        f"the key in {KEY_VAR}, then run the same command again (finished data sets are kept)") from None
    return dest
