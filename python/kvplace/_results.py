"""Reading reports back: kvplace.load_results for --json and --csv files, and a DataFrame."""
import csv
import json


def _number(text):
    """A CSV cell as the JSON reader would read the same text: int, float, or None (empty:
    `slots` of an unlimited policy, null in JSON)."""
    if text == "":
        return None
    try:
        return int(text)
    except ValueError:
        return float(text)


def load_results(path):
    """Reads a report written by `kvplace run --json FILE` or `--csv FILE` (or kvplace.run's
    dict saved with json.dump).  JSON: the whole report as a dict.  CSV: {"results": [one
    dict per row]}, the CSV's columns (the same names and values as the JSON's results)."""
    with open(path, newline="") as f:
        head = f.read(1)
        f.seek(0)
        if head in ("{", "["):
            return json.load(f)
        rows = list(csv.DictReader(f))
    text_fields = ("policy", "params")
    return {"results": [{k: (v if k in text_fields else _number(v)) for k, v in row.items()}
                        for row in rows]}


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
