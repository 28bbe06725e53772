"""Recording traces: a streaming .npy writer, and the reduction of Hugging Face attention
tensors to per-KV-head and per-layer scores (docs/PYTHON.md has the rules and a recorder)."""
import os
import tempfile

import numpy as np

from ._lib import Error

_WRITER_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.bool_))
_REDUCE = {"sum": np.sum, "max": np.max}


def _header(dtype, shape):
    """The .npy header np.save writes for a C-order array of this dtype and shape: version
    1.0, or 2.0 when the header does not fit 1.0's 65535 bytes (as np.save chooses)."""
    import io
    d = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
         "shape": tuple(int(x) for x in shape)}
    buf = io.BytesIO()
    try:
        np.lib.format.write_array_header_1_0(buf, d)
    except ValueError:
        buf = io.BytesIO()
        np.lib.format.write_array_header_2_0(buf, d)
    return buf.getvalue()


class TraceWriter:
    """Writes a trace (steps, layers, prompt + steps - 1) to a .npy file one decode step at a
    time, so that a recording never holds the whole trace in memory.

        with kvplace.TraceWriter("trace.npy", layers=32, prompt=P, steps=N) as w:
            for n in range(N):
                w.append(scores_of_step_n)      # (layers, P + n): the context of step n

    The finished file holds exactly the bytes np.save writes for the same array (padding
    positions are 0).  Stopping early (close() after n < steps appends, e.g. at an EOS
    token) gives the trace of the n steps written, (n, layers, prompt + n - 1), rewritten in
    place.  The file is written under a temporary name and renamed at close(); an exception
    inside the `with` block removes it, so no half-written trace is ever left at `path`.

    dtype: float16 (default; half the size), float32, or bool (access marks).  Values are
    converted with astype; a NaN or infinite score raises Error before anything is written.
    """

    def __init__(self, path, layers, prompt, steps, dtype=np.float16):
        self.dtype = np.dtype(dtype)
        if self.dtype not in _WRITER_DTYPES:
            raise Error("TraceWriter: dtype %s is not supported (float16, float32 or bool)"
                        % self.dtype, -1)
        for name, v in (("layers", layers), ("prompt", prompt), ("steps", steps)):
            if int(v) != v or v < 1:
                raise Error("TraceWriter: %s = %r: expected a whole number >= 1" % (name, v),
                            -1)
        self.path = os.fspath(path)
        self.layers, self.prompt, self.steps = int(layers), int(prompt), int(steps)
        self.positions = self.prompt + self.steps - 1
        self.n = 0  # steps appended
        d = os.path.dirname(os.path.abspath(self.path))
        fd, self._tmp = tempfile.mkstemp(prefix=os.path.basename(self.path) + ".tmp.", dir=d)
        self._f = os.fdopen(fd, "wb")
        self._hdr = _header(self.dtype, (self.steps, self.layers, self.positions))
        self._f.write(self._hdr)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False

    def append(self, scores):
        """Appends decode step n (the count appended so far): an array (layers, P + n) of
        the scores of the context's positions, or (layers, positions) already padded."""
        if self._f is None:
            raise Error("TraceWriter %s: closed" % self.path, -1)
        if self.n >= self.steps:
            raise Error("TraceWriter %s: all %d steps are written" % (self.path, self.steps),
                        -1)
        a = np.asarray(scores)
        ctx = self.prompt + self.n
        if a.ndim != 2 or a.shape[0] != self.layers or a.shape[1] not in (ctx, self.positions):
            raise Error("TraceWriter %s: step %d: shape %s; expected (%d, %d) (layers, prompt + "
                        "step) or (%d, %d)" % (self.path, self.n, a.shape, self.layers, ctx,
                                               self.layers, self.positions), -1)
        if self.dtype != np.bool_:
            if a.dtype.kind not in "fiub":
                raise Error("TraceWriter %s: step %d: dtype %s is not a number"
                            % (self.path, self.n, a.dtype), -1)
            with np.errstate(over="ignore", invalid="ignore"):  # reported below
                used = a[:, :ctx].astype(self.dtype)
            bad = ~np.isfinite(used)
            if bad.any():
                l, p = (int(i) for i in np.argwhere(bad)[0])
                v = used[l, p]
                what = "NaN" if np.isnan(v) else ("-inf" if v < 0 else "+inf")
                orig = a[l, p]
                note = (" (%r does not fit %s)" % (float(orig), self.dtype)
                        if np.isfinite(orig) else "")
                raise Error("TraceWriter %s: step %d, layer %d, position %d: score is %s%s"
                            % (self.path, self.n, l, p, what, note), -3)
        else:
            used = a[:, :ctx].astype(np.bool_)
        row = np.zeros((self.layers, self.positions), dtype=self.dtype)
        row[:, :ctx] = used
        if a.shape[1] == self.positions:  # a padded row keeps its padding, as np.save would
            row[:, ctx:] = a[:, ctx:].astype(self.dtype)
        self._f.write(row.tobytes())
        self.n += 1

    def append_hf(self, step_attentions, kv_heads, reduce="sum", heads="sum", batch=0):
        """Appends one decode step from Hugging Face attentions: a tuple over layers of
        (batch, heads, q, kv) tensors, as generate(..., output_attentions=True) returns per
        step.  Scores per KV head are kv_head_scores(...); a layer's score of a token is
        their `heads` ("sum" or "max") over the KV heads.  The step's kv length must be
        prompt + n + q (the cache, then the q new tokens, whose own columns are dropped:
        their KV is written at this step, not read)."""
        s = kv_head_scores(step_attentions, kv_heads, reduce=reduce, batch=batch)
        ctx = self.prompt + self.n
        q = _rows(step_attentions[0])
        if s.shape[2] != ctx + q:
            hint = (" (this is the prefill: pass outputs.attentions[1:], or use "
                    "append_generate)" if q > 1 and s.shape[2] == q else "")
            raise Error("TraceWriter %s: step %d: attention over %d positions with %d new "
                        "token(s); expected %d (prompt %d + step %d + %d)%s"
                        % (self.path, self.n, s.shape[2], q, ctx + q, self.prompt, self.n, q,
                           hint), -6)
        if heads not in _REDUCE:
            raise Error("heads=%r: expected 'sum' or 'max'" % (heads,), -1)
        self.append(_REDUCE[heads](s[:, :, :ctx], axis=1))

    def append_generate(self, attentions, kv_heads, reduce="sum", heads="sum", batch=0):
        """Appends every decode step of generate()'s `attentions` (outputs.attentions with
        return_dict_in_generate=True): element 0, the prefill over the prompt, is not a
        decode step and is skipped; elements 1.. are steps 0, 1, ..."""
        for step in attentions[1:]:
            self.append_hf(step, kv_heads, reduce=reduce, heads=heads, batch=batch)

    def close(self):
        """Finishes the file (compacting it to the steps written if fewer than `steps`) and
        renames it to `path`.  Raises Error if no step was written (and leaves no file)."""
        if self._f is None:
            return
        if self.n == 0:
            self.abort()
            raise Error("TraceWriter %s: no step was written; no file is left" % self.path, -6)
        if self.n < self.steps:
            self._compact()
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        self._f = None
        os.chmod(self._tmp, 0o644)
        os.replace(self._tmp, self.path)

    def abort(self):
        """Drops the file being written."""
        if self._f is not None:
            self._f.close()
            self._f = None
            os.unlink(self._tmp)

    def _compact(self):
        """Rewrites the n rows written as (n, L, P + n - 1) in place.  The new header and rows
        are never longer than the old, so each row moves towards the front and is read
        before anything is written over it."""
        f, isz = self._f, self.dtype.itemsize
        f.flush()
        old_c, new_c = self.positions, self.prompt + self.n - 1
        new_hdr = _header(self.dtype, (self.n, self.layers, new_c))
        assert len(new_hdr) <= len(self._hdr)
        with open(self._tmp, "r+b") as g:
            g.write(new_hdr)
            for r in range(self.n * self.layers):
                g.seek(len(self._hdr) + r * old_c * isz)
                data = g.read(new_c * isz)
                g.seek(len(new_hdr) + r * new_c * isz)
                g.write(data)
            g.truncate(len(new_hdr) + self.n * self.layers * new_c * isz)
        self.positions, self._hdr = new_c, new_hdr


def _to_numpy(t):
    """A torch tensor (any device, any float dtype) or array-like as a float32 array."""
    if hasattr(t, "detach"):
        t = t.detach().float().cpu().numpy()
    return np.asarray(t, dtype=np.float32)


def _rows(t):
    shape = tuple(t.shape)
    if len(shape) != 4:
        raise Error("attention tensor of shape %s; expected (batch, heads, q, kv)" % (shape,),
                    -6)
    return int(shape[2])


def kv_head_scores(step_attentions, kv_heads, reduce="sum", batch=0):
    """Per-KV-head scores of one step: (layers, kv_heads, kv) float32 from a tuple over
    layers of (batch, heads, q, kv) attention weights (Hugging Face's layout; `heads` are
    query heads).  Grouped-query attention: query head h reads KV head h // (heads /
    kv_heads), as in Hugging Face's repeat_kv.  A KV head's score of a position is the
    `reduce` ("sum", the default: the attention mass that KV entry serves; or "max") over
    its group's query heads and the step's q query rows, of sequence `batch`."""
    if reduce not in _REDUCE:
        raise Error("reduce=%r: expected 'sum' or 'max'" % (reduce,), -1)
    op = _REDUCE[reduce]
    out = []
    for l, t in enumerate(step_attentions):
        _rows(t)
        a = _to_numpy(t)
        b, h, q, kv = a.shape
        if not 0 <= batch < b:
            raise Error("layer %d: batch index %d outside the batch of %d" % (l, batch, b), -1)
        if kv_heads < 1 or h % kv_heads:
            raise Error("layer %d: %d query heads do not split into %d KV heads" %
                        (l, h, kv_heads), -6)
        g = a[batch].reshape(kv_heads, h // kv_heads, q, kv)
        out.append(op(g, axis=(1, 2)))
    if not out:
        raise Error("no layers in the step's attentions", -6)
    if len({o.shape for o in out}) != 1:
        raise Error("layers disagree on the attention's shape", -6)
    return np.stack(out).astype(np.float32)
