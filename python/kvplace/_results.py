"""Reading reports back: kvplace.load_results for --json and --csv files, and a DataFrame."""
import csv
import json


# Columns of the long-format CSV (schema 2, docs/CLI.md) that hold text, not numbers.
_TEXT = {"hw", "hw_modified", "model", "model_modified", "trace", "variation", "policy",
         "spec", "chosen"}
# Columns whose -1 is the CSV's sentinel for JSON's null (docs/CLI.md).
_SENTINEL = {"slots", "sa_best_W", "sa_best_R"}


def _cell(name, text):
    """A CSV cell as the JSON reader would read the same value: text, int, float, or None
    (an empty cell, or a column's documented sentinel)."""
    if text == "":
        return None
    if name in _TEXT:
        return text
    try:
        v = int(text)
    except ValueError:
        v = float(text)
    return None if name in _SENTINEL and v == -1 else v


def load_results(path):
    """Reads a report written by `kvplace run --json FILE` or `--csv FILE` (or kvplace.run's
    dict saved with json.dump).  JSON: the whole report as a dict.  CSV: {"results": [one
    dict per row]}, every column of the long-format CSV (the scenario's columns, then the
    result's: where a name is also a key of the JSON's result, the same value)."""
    with open(path, newline="") as f:
        head = f.read(1)
        f.seek(0)
        if head in ("{", "["):
            return json.load(f)
        rows = list(csv.DictReader(f))
    return {"results": [{k: _cell(k, v) for k, v in row.items()} for row in rows]}


def to_dataframe(report):
    """A pandas DataFrame with one row per policy, from kvplace.run's report, a report dict
    from load_results, or a path to a report.  Needs pandas (python3-pandas)."""
    try:
        import pandas as pd
    except ImportError as e:
        raise ImportError("kvplace.to_dataframe needs pandas "
                          "(apt-get install python3-pandas)") from e
    if not isinstance(report, dict):
        report = load_results(report)
    return pd.DataFrame(report["results"])
