"""kvplace from Python: run the simulator on NumPy traces, record traces from Hugging Face
models, read reports.  Calls libkvplace.so through ctypes (never the command line).

    import kvplace
    report = kvplace.run(trace=scores, hw="gh200-paper", model="llama-3.1-8b",
                         set={"sparsity": 0.6, "batch": 4}, policies=["static", "lookahead"])
    for r in report["results"]:
        print(r["policy"], r["throughput_tok_s"])

docs/PYTHON.md has the whole story.
"""
from ._lib import Error
from ._results import load_results, to_dataframe
from ._run import default_policies, policies, run
from ._writer import TraceWriter, kv_head_scores

__all__ = ["Error", "run", "policies", "default_policies", "load_results", "to_dataframe",
           "TraceWriter", "kv_head_scores"]
