import pytest

torch = pytest.importorskip("torch")

from spikeforge.quant.lsq import LSQWeight, qrange  # noqa: E402


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("per_channel", [True, False])
def test_lsq_integers_span_the_signed_range(bits, per_channel):
    torch.manual_seed(bits)
    w = torch.randn(6, 5, 3, 3) * torch.linspace(0.1, 3, 6).view(-1, 1, 1, 1)
    q = LSQWeight(bits, 6, per_channel)
    qn, qp = qrange(bits)
    q(w)  # LSQ initialisation; then a step small enough that the largest weights saturate
    with torch.no_grad():
        top = w.abs().flatten(1).max(1).values if per_channel else w.abs().max().reshape(1)
        q.step.copy_(top / (2 * qp))
    wq = q(w)
    assert (qn, qp) == (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    ints = q.integer(w)
    assert ints.min() >= qn and ints.max() <= qp
    assert ints.min() == qn and ints.max() == qp      # large weights saturate at both ends
    assert torch.equal(ints, torch.round(ints))
    step = q.steps().view(-1, 1, 1, 1) if per_channel else q.steps()
    assert torch.allclose(wq, ints * step)
    if per_channel:
        assert len(set(q.steps().tolist())) == 6      # one step per output channel


def test_lsq_gradients_reach_weights_and_steps():
    w = torch.randn(4, 8, requires_grad=True)
    q = LSQWeight(4, 4)
    (q(w) ** 2).sum().backward()
    assert w.grad is not None and w.grad.abs().sum() > 0
    assert q.step.grad is not None and q.step.grad.abs().sum() > 0


def test_lsq_rejects_one_bit():
    with pytest.raises(ValueError, match="weight bits is 1"):
        LSQWeight(1, 4)
