"""The GRPO config a run recorded (its checkpoint's train_state.json) as TOML for `nanoreward
grpo`, with overrides: a cycle's round rerun with one thing changed (scripts/round_arm.sh). The
run's seed is kept (written as text: a u64 can exceed TOML's integers); an override is read in the
type of the recorded value (true/false; a list as comma-separated text); +KEY=VALUE adds a setting
the run did not record (one newer than the run, e.g. +adv_estimator=raft), read as a number, true /
false, or else text.

    python3 scripts/round_config.py CKPT_DIR/train_state.json [KEY=VALUE | +KEY=VALUE ...] > arm.toml
"""
import json
import math
import sys


def parse(key, raw, like):
    """`raw` (an override's text) in the type of `like`, the recorded value."""
    if isinstance(like, bool):
        if raw not in ("true", "false"):
            sys.exit(f"{key} takes true or false, got '{raw}'")
        return raw == "true"
    if isinstance(like, list):
        return [x for x in raw.split(",") if x]
    try:
        return type(like)(raw) if isinstance(like, (int, float)) else raw
    except ValueError:
        sys.exit(f"{key} takes a {type(like).__name__}, got '{raw}'")


def new_value(raw):
    """A setting the run did not record: a number, true / false, or else text."""
    if raw in ("true", "false"):
        return raw == "true"
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return raw


def toml_value(key, v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, int):
        return str(v) if -2**63 <= v < 2**63 else json.dumps(str(v))
    if isinstance(v, float):
        return ("nan" if math.isnan(v) else "inf" if v > 0 else "-inf") if not math.isfinite(v) else repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(key, x) for x in v) + "]"
    sys.exit(f"{key}: cannot write {type(v).__name__} values as TOML")


def main(state_path, overrides):
    try:
        config = json.load(open(state_path))["config"]
    except (OSError, ValueError, KeyError) as e:
        sys.exit(f"{state_path}: not a run's train_state.json with its config ({e})")
    for kv in overrides:
        key, sep, raw = kv.partition("=")
        if sep and key.startswith("+"):
            key = key[1:]
            if key not in config:
                config[key] = new_value(raw)
                continue
        if not sep or key not in config:
            sys.exit(f"'{kv}' is not KEY=VALUE with a key of the recorded config ({', '.join(config)})")
        config[key] = parse(key, raw, config[key])
    for key, v in config.items():
        if v is not None:
            print(f"{key} = {toml_value(key, v)}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
