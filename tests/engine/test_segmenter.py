"""The Segmenter: native-size in/out, determinism, batch == one by one, progress, cancel, OOM fallback."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from lsms_core.errors import Cancelled, CheckpointError, TextEncoderError


def _ct(n=3, h=70, w=58, seed=0):
    """Slices in Hounsfield units: soft tissue with a low-density blob and noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    base = np.where((yy - h / 2) ** 2 / (h / 2.2) ** 2 + (xx - w / 2) ** 2 / (w / 2.2) ** 2 < 1, 60.0, -1000.0)
    stack = np.repeat(base[None], n, axis=0) + rng.normal(0, 15, (n, h, w))
    stack[:, 20:32, 18:30] = 5.0
    return stack.astype(np.float32)


def _gap_threshold(probs):
    """A threshold in the widest gap between neighbouring probabilities near the median, so that last-digit
    differences between kernels cannot flip a pixel (a random network gives probabilities all near 0.5)."""
    values = np.unique(probs.ravel())
    lo, hi = np.searchsorted(values, np.quantile(values, [0.3, 0.7]))
    window = values[lo:hi + 1]
    i = int(np.argmax(np.diff(window)))
    return float((window[i] + window[i + 1]) / 2)


def test_native_size_in_and_out_for_a_slice_and_a_stack(segmenter):
    one = segmenter.predict(_ct(1)[0], "the low-density lesion")
    assert one.probs.shape == one.masks.shape == (70, 58)
    assert one.probs.dtype == np.float16 and one.masks.dtype == bool
    assert np.all((one.probs >= 0) & (one.probs <= 1))
    stack = segmenter.predict(_ct(3, 40, 100), "the low-density lesion")
    assert stack.probs.shape == (3, 40, 100) and stack.device == "cpu"
    assert segmenter.trained is False  # a random checkpoint never claims to be trained


def test_masks_are_thresholded_on_float32_before_probabilities_are_kept_as_float16(segmenter):
    ct = _ct(3)
    exact, _ = segmenter._forward(ct, segmenter.text_encoder.encode(["the low-density lesion"]))
    assert exact.dtype == np.float32
    # a threshold among the values, so that rounding to float16 moves some of them across it
    threshold = float(np.median(exact))
    pred = segmenter.predict(ct, "the low-density lesion", batch_size=3, threshold=threshold)
    assert np.array_equal(pred.probs, exact.astype(np.float16))
    assert np.array_equal(pred.masks, exact > threshold)
    assert not np.array_equal(pred.probs > threshold, exact > threshold)  # what rounding first would give
    region = (slice(1, 3), slice(5, 30), slice(11, 50))  # columns off the byte boundaries
    assert np.array_equal(pred.unpack_masks(region), (exact > threshold)[region])
    alone, _ = segmenter._forward(ct[1:2], segmenter.text_encoder.encode(["the low-density lesion"]))
    one = segmenter.predict(ct[1], "the low-density lesion", threshold=threshold)
    assert one.masks.shape == (70, 58) and np.array_equal(one.masks, alone[0] > threshold)


def test_repeated_calls_are_bit_identical(segmenter):
    ct = _ct()
    a = segmenter.predict(ct, "cyst in the right lobe", batch_size=2)
    b = segmenter.predict(ct, "cyst in the right lobe", batch_size=2)
    assert np.array_equal(a.probs, b.probs) and np.array_equal(a.masks, b.masks)


def test_a_batch_gives_the_same_masks_as_slices_one_by_one(segmenter):
    ct = _ct(4)
    batched = segmenter.predict(ct, "the hypodense nodule", batch_size=4)
    single = [segmenter.predict(s, "the hypodense nodule").probs for s in ct]
    # Kernels differ in the last float32 digits, which can move a value across a float16 rounding
    # boundary: at most one float16 step (4.9e-4 below 1) apart.
    assert np.allclose(batched.probs, np.stack(single), atol=4.9e-4, rtol=0)
    t = _gap_threshold(batched.probs)
    again = segmenter.predict(ct, "the hypodense nodule", batch_size=4, threshold=t)
    one_by_one = np.stack([segmenter.predict(s, "the hypodense nodule", threshold=t).masks for s in ct])
    assert 0 < again.masks.sum() < again.masks.size
    assert np.array_equal(again.masks, one_by_one)


def test_the_words_change_the_answer(segmenter):
    ct = _ct(1)[0]
    a = segmenter.predict(ct, "the cyst in the right lobe").probs
    b = segmenter.predict(ct, "a large enhancing mass in segment II near the stomach").probs
    assert not np.allclose(a, b, atol=1e-4)


def test_progress_reports_every_batch(segmenter):
    calls = []
    segmenter.predict(_ct(5), "lesion", batch_size=2, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(2, 5), (4, 5), (5, 5)]


def test_cancel_stops_between_batches(segmenter):
    calls = []

    def cancel():
        return len(calls) >= 1

    with pytest.raises(Cancelled, match="after 2 of 6"):
        segmenter.predict(_ct(6), "lesion", batch_size=2, progress=lambda d, t: calls.append(d), cancel=cancel)


def test_bad_inputs_are_clear_errors(segmenter):
    with pytest.raises(TextEncoderError, match="empty"):
        segmenter.predict(_ct(1)[0], "   ")
    with pytest.raises(Exception, match="expected one"):
        segmenter.predict(np.zeros((2, 2, 3, 3)), "lesion")


def test_missing_demo_or_folder_is_a_checkpoint_error(tmp_path):
    from lsms_core.engine import Segmenter

    with pytest.raises(CheckpointError, match="does not exist"):
        Segmenter.from_checkpoint(tmp_path / "none", device="cpu")


_OOM_SCRIPT = textwrap.dedent(
    """
    import resource, sys
    import numpy as np
    from lsms_core.engine import Segmenter, OutOfMemory
    seg = Segmenter.from_checkpoint(sys.argv[1], device="cpu", threads=1)
    x = np.zeros((16, 64, 64), np.float32)
    free = seg.predict(x, "a lesion", batch_size=1)
    vm = int([l for l in open("/proc/self/status") if l.startswith("VmSize")][0].split()[1]) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (vm + int(sys.argv[2]) * 2**20, resource.RLIM_INFINITY))
    try:
        capped = seg.predict(x, "a lesion", batch_size=16)
    except OutOfMemory as exc:
        print("OUT_OF_MEMORY", exc)
    else:
        print("BATCH", capped.batch_size)
        print("SAME", bool(np.array_equal(capped.probs, free.probs)))
        for note in capped.notes:
            print("NOTE", note)
    """
)


def _run_capped(checkpoint, megabytes):
    # A fixed mmap threshold makes glibc return every large buffer to the system when it is freed; with its
    # default (a threshold that grows after frees), the reference run can leave a slice's worth of memory
    # mapped, and the capped run then fits one slice in it on some machines.
    env = dict(os.environ, OMP_NUM_THREADS="1", MALLOC_MMAP_THRESHOLD_="65536")
    result = subprocess.run([sys.executable, "-c", _OOM_SCRIPT, str(checkpoint), str(megabytes)],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def big_input_checkpoint(tmp_path_factory):
    from lsms_core.checkpoint import create_random_checkpoint

    return create_random_checkpoint(tmp_path_factory.mktemp("oom") / "c256", input_size=256)


@pytest.mark.slow
def test_out_of_memory_falls_back_to_smaller_batches(big_input_checkpoint):
    # A real allocation failure under an address-space cap goes through the same code path as CUDA's OOM.
    out = _run_capped(big_input_checkpoint, 300)
    batch = int(out.split("BATCH")[1].split()[0])
    assert 1 <= batch < 16
    assert "SAME True" in out
    assert "NOTE out of memory on cpu with batches of 16; retrying with 8" in out


@pytest.mark.slow
def test_out_of_memory_for_a_single_slice_is_a_clear_error(big_input_checkpoint):
    out = _run_capped(big_input_checkpoint, 4)
    assert "OUT_OF_MEMORY segmentation: not enough memory for one slice on the CPU" in out


def test_precision_is_float32_on_cpu_unless_asked(segmenter):
    from lsms_core.engine import Segmenter
    from lsms_core.errors import LSMSError

    assert segmenter.precision == "float32"
    fast = Segmenter(segmenter.model, segmenter.config, segmenter.folder, segmenter.text_encoder, "cpu",
                     precision="bfloat16")
    assert fast.precision == "bfloat16"
    ct = _ct(2)
    exact = segmenter.predict(ct, "the low-density lesion").probs
    approx = fast.predict(ct, "the low-density lesion").probs
    assert approx.dtype == np.float16 and approx.shape == exact.shape
    assert np.abs(approx - exact).max() < 0.05
    assert not np.array_equal(approx, exact)  # bfloat16 really ran
    with pytest.raises(LSMSError, match="precision"):
        Segmenter(segmenter.model, segmenter.config, segmenter.folder, segmenter.text_encoder, "cpu",
                  precision="int8")


def test_allocation_failures_are_recognised_as_out_of_memory():
    import torch

    from lsms_core.engine import is_out_of_memory

    assert is_out_of_memory(RuntimeError("std::bad_alloc"))  # operator new inside an ATen/oneDNN kernel
    assert is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 8"))
    assert is_out_of_memory(RuntimeError("could not create a primitive"))
    assert is_out_of_memory(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_out_of_memory(MemoryError())
    assert not is_out_of_memory(RuntimeError("could not create a primitive descriptor for a convolution"))
    assert not is_out_of_memory(RuntimeError("shape '[2, 3]' is invalid for input of size 7"))
    assert not is_out_of_memory(ValueError("out of memory"))
