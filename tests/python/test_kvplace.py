"""The Python package against the CLI and against NumPy: the same trace gives the CLI's JSON
to the last bit; the writer gives np.save's bytes; the Hugging Face helper gives per-KV-head
scores worked out by hand below; bad arrays raise kvplace.Error.  Run by tests/py_kvplace.sh
with KVPLACE (the CLI) and KVPLACE_LIB (the shared library) set."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np

import kvplace

KVPLACE = os.environ.get("KVPLACE", "build/kvplace")
# The CLI runs without the sanitizer runtime this interpreter may have preloaded
# (tests/py_kvplace.sh under make sanitize): the CLI links its own.
CLI_ENV = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}

# A small scenario where capacity binds: 2 layers, 19 one-token slots per layer
# (160 kB of KV budget / (2 layers x 4096 bytes per token at batch 1)).
SCN = {"layers": 2, "weight_bytes": "1MB", "hbm_capacity": "1.16MB", "sparsity": 0.5}
CLI_SETS = ["--set", "layers=2", "--set", "weight_bytes=1MB", "--set", "hbm_capacity=1.16MB",
            "--set", "sparsity=0.5"]


def random_trace(rng, n, l, p, dtype):
    c = p + n - 1
    if dtype == np.bool_:
        return rng.random((n, l, c)) < 0.4
    return (rng.integers(0, 6, size=(n, l, c)) / 4).astype(dtype)  # many ties


class Tmp(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="kvp_py.")

    def tearDown(self):
        shutil.rmtree(self.dir)

    def path(self, name):
        return os.path.join(self.dir, name)


class RunEqualsCli(Tmp):
    def cli(self, trace_path, policies="all", extra=()):
        out = self.path("cli.json")
        csv = self.path("cli.csv")
        subprocess.run([KVPLACE, "run", "--trace", trace_path, "--hw", "gh200-paper",
                        "--model", "llama-3.1-8b", *CLI_SETS, "--policy", policies,
                        "--json", out, "--csv", csv, "--quiet", *extra],
                       check=True, stdout=subprocess.DEVNULL, env=CLI_ENV)
        return out, csv

    def check_dtype(self, dtype, seed):
        rng = np.random.default_rng(seed)
        a = random_trace(rng, 14, 2, 40, dtype)
        f = self.path("t.npy")
        np.save(f, a)
        cli_json, cli_csv = self.cli(f)
        with open(cli_json) as fh:
            want = json.load(fh)
        got = kvplace.run(trace=a, hw="gh200-paper", model="llama-3.1-8b", set=SCN,
                          policies="all")
        # Every number equal as parsed from the same digits: bit-for-bit equal doubles.
        self.assertEqual(got["results"], want["results"])
        self.assertEqual(got["scenario"], want["scenario"])
        self.assertEqual(got["trace"]["source"], "array")
        for k in ("prompt", "steps", "layers"):
            self.assertEqual(got["trace"][k], want["trace"][k])
        # The policies do differ here (capacity binds), so equality is not vacuous.
        times = {r["policy"]: r["total_time_s"] for r in got["results"]}
        self.assertGreater(len(set(times.values())), 3, times)
        # The same file through the library's reader: the whole report is the CLI's.
        self.assertEqual(kvplace.run(trace=f, hw="gh200-paper", model="llama-3.1-8b",
                                     set=SCN, policies="all"), want)
        # The CSV of the same run reads back to the same results, key by key where the JSON
        # has the key (the CSV adds the scenario's columns; the JSON adds typed params).
        rows = kvplace.load_results(cli_csv)["results"]
        self.assertEqual(len(rows), len(want["results"]))
        for row, res in zip(rows, want["results"]):
            common = [k for k in res if k in row]
            self.assertGreater(len(common), 30)
            self.assertEqual({k: row[k] for k in common}, {k: res[k] for k in common})
        self.assertEqual(kvplace.load_results(cli_json), want)

    def test_float16(self):
        self.check_dtype(np.float16, 1)

    def test_float32(self):
        self.check_dtype(np.float32, 2)

    def test_bool(self):
        self.check_dtype(np.bool_, 3)

    def test_heads(self):
        # A 4-D array of 8 identical heads (llama-3.1-8b has kv_heads 8) gives the numbers of
        # its 3-D array at the same batch (docs/MODEL.md section 12), with the CLI's default
        # list left to the policies that run on streams; the report names the heads.
        rng = np.random.default_rng(7)
        a = random_trace(rng, 10, 2, 30, np.float32)
        a4 = np.repeat(a[:, :, None, :], 8, axis=2)
        # a budget that splits evenly for 1- and 16-token blocks: 2 layers x 16 x 4096 B
        scn = dict(SCN, hbm_capacity=1000000 + 2 * 16 * 4096)
        got = kvplace.run(trace=a4, hw="gh200-paper", model="llama-3.1-8b", set=scn)
        names = [r["policy"] for r in got["results"]]
        self.assertIn("lookahead", names)
        self.assertIn("plan", names)  # every policy runs on streams
        self.assertEqual(got["trace"]["heads"], 8)
        want = kvplace.run(trace=a, hw="gh200-paper", model="llama-3.1-8b", set=scn,
                           policies=names)
        key = ("total_time_s", "kv_read_hbm_bytes", "kv_read_dram_bytes", "promoted_bytes")
        self.assertEqual([[r[k] for k in key] for r in got["results"]],
                         [[r[k] for k in key] for r in want["results"]])
        self.assertGreater(len({r["total_time_s"] for r in want["results"]}), 3)

    def test_layout_and_byte_order_do_not_matter(self):
        rng = np.random.default_rng(4)
        a = random_trace(rng, 6, 2, 20, np.float32)
        base = kvplace.run(trace=a, set=SCN, policies=["static", "reactive", "bound"])
        fortran = np.asfortranarray(a)
        swapped = a.astype(">f4")
        for b in (fortran, swapped, a[:, :, :]):
            self.assertEqual(kvplace.run(trace=b, set=SCN,
                                         policies=["static", "reactive", "bound"]), base)

    def test_synthetic_spec_equals_cli(self):
        out = self.path("s.json")
        subprocess.run([KVPLACE, "run", "--set", "prompt=300", "--set", "steps=20",
                        "--set", "seed=7", "--synthetic", "high", "--policy",
                        "static,lookahead", "--json", out, "--quiet"], check=True,
                       stdout=subprocess.DEVNULL, env=CLI_ENV)
        with open(out) as fh:
            want = json.load(fh)
        got = kvplace.run(trace={"prompt": 300, "steps": 20, "seed": 7, "variation": "high"},
                          policies=["static", "lookahead"])
        self.assertEqual(got, want)

    def test_default_policies_are_the_clis(self):
        out = self.path("d.json")
        subprocess.run([KVPLACE, "run", "--set", "prompt=100", "--set", "steps=5",
                        "--json", out, "--quiet"], check=True, stdout=subprocess.DEVNULL,
                       env=CLI_ENV)
        with open(out) as fh:
            want = json.load(fh)
        self.assertEqual(kvplace.run(trace={"prompt": 100, "steps": 5}), want)
        self.assertNotIn("sa", kvplace.default_policies())

    def test_dataframe(self):
        try:
            import pandas  # noqa: F401
        except ImportError:
            self.skipTest("pandas not installed")
        rep = kvplace.run(trace={"prompt": 100, "steps": 5}, policies=["static", "bound"])
        df = kvplace.to_dataframe(rep)
        self.assertEqual(list(df["policy"]), ["static", "bound"])
        self.assertEqual(df["total_time_s"][0], rep["results"][0]["total_time_s"])


class BadInput(unittest.TestCase):
    def assertError(self, needle, **kw):
        with self.assertRaises(kvplace.Error) as cm:
            kvplace.run(**kw)
        self.assertIn(needle, str(cm.exception))
        self.assertLess(cm.exception.code, 0)
        return cm.exception

    def test_dims(self):
        self.assertError("2 dimensions; expected 3", trace=np.zeros((3, 4), np.float32))
        self.assertError("1 dimension; expected 3", trace=np.zeros(4, np.float32))
        self.assertError("5 dimensions", trace=np.zeros((2, 2, 8, 5, 1), np.float32))
        self.assertError("4-D trace has 3 heads", trace=np.zeros((2, 32, 3, 5), np.float32),
                         policies=["static"])
        self.assertError("no steps", trace=np.zeros((0, 2, 5), np.float32))
        self.assertError("5 steps need at least 5 positions",
                         trace=np.zeros((5, 2, 4), np.float32), set=SCN)

    def test_dtype(self):
        self.assertError("dtype float64 is not supported", trace=np.zeros((2, 2, 5)))
        self.assertError("dtype int32 is not supported", trace=np.zeros((2, 2, 5), np.int32))
        self.assertError("dtype complex64", trace=np.zeros((2, 2, 5), np.complex64))
        self.assertError("dtype object", trace=np.array([[[None, 1]]], dtype=object))

    def test_nan_and_inf(self):
        a = np.zeros((2, 2, 5), np.float32)
        a[1, 1, 4] = np.nan
        e = self.assertError("array: step 1, layer 1, position 4: score is NaN", trace=a,
                             set=SCN)
        self.assertEqual(e.code, -3)  # KVP_EFORMAT
        a[1, 1, 4] = -np.inf
        self.assertError("score is -inf", trace=a.astype(np.float16), set=SCN)
        # Padding (step 0, position 4: context 4) is never read, so NaN there is fine.
        a[1, 1, 4] = 0
        a[0, 0, 4] = np.nan
        kvplace.run(trace=a, set=SCN, policies=["static"])

    def test_layers_must_match_model(self):
        self.assertError("layer", trace=np.zeros((2, 3, 5), np.float32), set=SCN,
                         policies=["static"])

    def test_parameters(self):
        self.assertError("nosuch", set={"nosuch": 1})
        self.assertError("sparsity", set={"sparsity": 1.5})
        self.assertError("batch", set={"batch": True})
        self.assertError("trace defines them", trace=np.zeros((2, 2, 5), np.float32),
                         set=dict(SCN, prompt=4))
        self.assertError("not a parameter of the synthetic trace", trace={"batch": 2})
        self.assertError("nope", policies=["nope"])
        self.assertError("no-such-file.npy", trace="/nonexistent/no-such-file.npy")


class Writer(Tmp):
    def record(self, a, dtype, padded=False, steps=None, **kw):
        n_all, layers, c = a.shape
        p = c - n_all + 1
        f = self.path("w.npy")
        with kvplace.TraceWriter(f, layers=layers, prompt=p, steps=steps or n_all,
                                 dtype=dtype) as w:
            for n in range(n_all):
                w.append(a[n] if padded else a[n, :, :p + n])
        with open(f, "rb") as fh:
            return fh.read()

    def saved(self, a):
        f = self.path("ref.npy")
        np.save(f, a)
        with open(f, "rb") as fh:
            return fh.read()

    def test_equals_np_save(self):
        rng = np.random.default_rng(5)
        for dtype in (np.float16, np.float32, np.bool_):
            for n, l, p in ((1, 1, 1), (5, 3, 7), (40, 2, 100)):
                a = random_trace(rng, n, l, p, dtype)
                for s in range(n):  # padding as the writer writes it: zeros
                    a[s, :, p + s:] = 0
                self.assertEqual(self.record(a, dtype), self.saved(a), (dtype, n, l, p))
            # Rows given padded keep what the padding holds, as np.save would.
            a = random_trace(rng, 5, 2, 9, dtype)
            self.assertEqual(self.record(a, dtype, padded=True), self.saved(a))

    def test_long_header_dims(self):
        # Dimensions with many digits change the header's length; still np.save's bytes.
        a = np.zeros((2, 1, 123456), np.float16)
        a[1, 0, :123456] = 1
        self.assertEqual(self.record(a, np.float16), self.saved(a))

    def test_stopping_early_compacts(self):
        rng = np.random.default_rng(6)
        full = random_trace(rng, 9, 2, 12, np.float32)
        for s in range(9):
            full[s, :, 12 + s:] = 0
        # Planned for 30 steps, stopped after 9: the file is the 9-step trace.
        self.assertEqual(self.record(full, np.float32, steps=30), self.saved(full))

    def test_nothing_left_on_error(self):
        f = self.path("x.npy")
        with self.assertRaises(kvplace.Error) as cm:
            with kvplace.TraceWriter(f, layers=2, prompt=3, steps=4) as w:
                w.append(np.ones((2, 3)))
                bad = np.ones((2, 4))
                bad[1, 2] = np.nan
                w.append(bad)
        self.assertIn("step 1, layer 1, position 2: score is NaN", str(cm.exception))
        self.assertEqual(os.listdir(self.dir), [])
        with self.assertRaises(kvplace.Error) as cm:
            with kvplace.TraceWriter(f, layers=2, prompt=3, steps=4) as w:
                w.append(np.ones((2, 5)))
        self.assertIn("expected (2, 3)", str(cm.exception))
        with self.assertRaises(kvplace.Error) as cm:
            with kvplace.TraceWriter(f, layers=1, prompt=1, steps=1) as w:
                w.append(np.array([[70000.0]]))  # float16 tops out at 65504
        self.assertIn("does not fit float16", str(cm.exception))
        with self.assertRaises(kvplace.Error):
            kvplace.TraceWriter(f, layers=1, prompt=1, steps=1, dtype=np.float64)
        with self.assertRaises(kvplace.Error):
            with kvplace.TraceWriter(f, layers=1, prompt=1, steps=3):
                pass  # no step: no file
        self.assertEqual(os.listdir(self.dir), [])


# Hand-made attentions, in eighths so that every sum is exact.  Query heads 0, 1 share KV
# head 0 and heads 2, 3 share KV head 1 (Hugging Face's repeat_kv: contiguous groups).
ROWS = np.array([[1, 2, 3, 2],
                 [3, 2, 1, 2],
                 [0, 4, 4, 0],
                 [2, 2, 2, 2]], np.float32) / 8
# Worked out by hand from ROWS:
SUM_KV = np.array([[4, 4, 4, 4], [2, 6, 6, 2]], np.float32) / 8   # heads 0+1, heads 2+3
MAX_KV = np.array([[3, 2, 3, 2], [2, 4, 4, 2]], np.float32) / 8   # max of each pair


def hf_step(rows, layers=2, batch=2):
    """(batch, 4 heads, q=1, kv) per layer; layer l is rows * (l + 1); sequence 1 is junk."""
    out = []
    for l in range(layers):
        t = np.full((batch, 4, 1, rows.shape[1]), 9.0, np.float32)
        t[0, :, 0, :] = rows * (l + 1)
        out.append(t)
    return tuple(out)


class HuggingFace(Tmp):
    def test_kv_head_scores(self):
        s = kvplace.kv_head_scores(hf_step(ROWS), kv_heads=2)
        self.assertEqual(s.shape, (2, 2, 4))
        np.testing.assert_array_equal(s[0], SUM_KV)
        np.testing.assert_array_equal(s[1], 2 * SUM_KV)
        m = kvplace.kv_head_scores(hf_step(ROWS), kv_heads=2, reduce="max")
        np.testing.assert_array_equal(m[0], MAX_KV)
        # Sequence 1 of the batch (all 9s): 2 query heads x 9 per KV head.
        np.testing.assert_array_equal(kvplace.kv_head_scores(hf_step(ROWS), 2, batch=1)[0],
                                      np.full((2, 4), 18, np.float32))
        # Multi-head attention (kv_heads == heads) keeps every head; one KV head sums all.
        np.testing.assert_array_equal(kvplace.kv_head_scores(hf_step(ROWS), 4)[0], ROWS)
        np.testing.assert_array_equal(kvplace.kv_head_scores(hf_step(ROWS), 1)[0, 0],
                                      np.array([6, 10, 10, 6], np.float32) / 8)

    def test_q_rows_reduce_too(self):
        t = np.zeros((1, 4, 2, 4), np.float32)
        t[0, :, 0, :] = ROWS
        t[0, :, 1, :] = ROWS[::-1]  # heads reversed in the second query row
        s = kvplace.kv_head_scores((t,), kv_heads=2)
        both = (SUM_KV + SUM_KV[::-1])  # head pairs (3, 2) and (1, 0) in row 2
        np.testing.assert_array_equal(s[0], both)

    def test_append_generate(self):
        # Prompt 3: the prefill (q = kv = 3), then steps 0 and 1 with kv = 4 and 5 (the
        # cache plus the new token itself, whose column is dropped).
        prefill = tuple(np.ones((2, 4, 3, 3), np.float32) for _ in range(2))
        step1_rows = np.concatenate([ROWS, ROWS[:, :1]], axis=1)  # kv = 5
        f = self.path("hf.npy")
        with kvplace.TraceWriter(f, layers=2, prompt=3, steps=2, dtype=np.float32) as w:
            w.append_generate((prefill, hf_step(ROWS), hf_step(step1_rows)), kv_heads=2)
        got = np.load(f)
        # Step 0, layer 0: KV heads summed (SUM_KV[0] + SUM_KV[1]) over positions 0..2.
        np.testing.assert_array_equal(got[0, 0], np.array([6, 10, 10, 0], np.float32) / 8)
        np.testing.assert_array_equal(got[0, 1], np.array([12, 20, 20, 0], np.float32) / 8)
        np.testing.assert_array_equal(got[1, 0], np.array([6, 10, 10, 6], np.float32) / 8)
        f2 = self.path("hf_max.npy")
        with kvplace.TraceWriter(f2, layers=2, prompt=3, steps=1, dtype=np.float32) as w:
            w.append_hf(hf_step(ROWS), kv_heads=2, reduce="max", heads="max")
        np.testing.assert_array_equal(np.load(f2)[0, 0], np.array([3, 4, 4], np.float32) / 8)
        # The recorded trace runs.
        kvplace.run(trace=f, set=SCN, policies=["static", "bound"])

    def test_errors(self):
        f = self.path("e.npy")
        w = kvplace.TraceWriter(f, layers=2, prompt=3, steps=2)
        with self.assertRaises(kvplace.Error) as cm:
            w.append_hf(hf_step(ROWS), kv_heads=3)
        self.assertIn("4 query heads do not split into 3 KV heads", str(cm.exception))
        with self.assertRaises(kvplace.Error) as cm:  # kv 4 given at step 0 of prompt 2
            kvplace.TraceWriter(self.path("f.npy"), layers=2, prompt=2, steps=2).append_hf(
                hf_step(ROWS), kv_heads=2)
        self.assertIn("expected 3 (prompt 2 + step 0 + 1)", str(cm.exception))
        prefill = tuple(np.ones((1, 4, 3, 3), np.float32) for _ in range(2))
        with self.assertRaises(kvplace.Error) as cm:
            w.append_hf(prefill, kv_heads=2)
        self.assertIn("this is the prefill", str(cm.exception))
        with self.assertRaises(kvplace.Error):
            w.append_hf((np.ones((4, 1, 4), np.float32),), kv_heads=2)
        with self.assertRaises(kvplace.Error):
            w.append_hf(hf_step(ROWS), kv_heads=2, reduce="mean")
        w.abort()


if __name__ == "__main__":
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__])
    res = unittest.TextTestRunner(verbosity=1).run(suite)
    failed = len(res.failures) + len(res.errors)
    if res.skipped:
        print("SKIPPED: %s" % "; ".join("%s (%s)" % (t.id().split(".")[-1], why)
                                       for t, why in res.skipped))
    print("%d passed, %d failed" % (res.testsRun - failed - len(res.skipped), failed))
    sys.exit(1 if failed else 0)
