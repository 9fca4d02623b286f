import numpy as np
import pytest

from fxmm.datasets.label_policies import (LABEL_POLICIES, LSR_RANGE, apply_label_policy,
                                          check_label_policy, register_label_policy)

# The method's range for CheXpert's uncertain labels (/work/shared/specs/method.md, "LSR").
METHOD_LSR = (0.55, 0.85)

LABEL = np.array([1, 0, -1, np.nan, -1], dtype=np.float32)


def test_ignore_keeps_uncertain_and_missing():
    out = apply_label_policy(LABEL, 'ignore')
    np.testing.assert_array_equal(out, LABEL)
    assert out.dtype == np.float32 and out is not LABEL


@pytest.mark.parametrize('policy, value', [('ones', 1.0), ('zeros', 0.0)])
def test_u_ones_and_u_zeros(policy, value):
    out = apply_label_policy(LABEL, policy)
    np.testing.assert_array_equal(out, [1, 0, value, np.nan, value])


def test_lsr_draws_per_entry_from_its_range_with_the_given_rng():
    out = apply_label_policy(LABEL, 'lsr', np.random.default_rng(3))
    assert out[[0, 1]].tolist() == [1, 0] and np.isnan(out[3])
    assert np.all((out[[2, 4]] >= METHOD_LSR[0]) & (out[[2, 4]] <= METHOD_LSR[1]))
    assert out[2] != out[4]
    again = apply_label_policy(LABEL, 'lsr', np.random.default_rng(3))
    np.testing.assert_array_equal(out, again)
    with pytest.raises(ValueError, match='rng'):
        apply_label_policy(LABEL, 'lsr')


def test_lsr_range_is_the_methods_and_the_draws_fill_it():
    assert LSR_RANGE == METHOD_LSR
    draws = apply_label_policy(np.full(2000, -1, np.float32), 'lsr', np.random.default_rng(0))
    assert METHOD_LSR[0] <= draws.min() < METHOD_LSR[0] + 0.01
    assert METHOD_LSR[1] - 0.01 < draws.max() <= METHOD_LSR[1]


def test_missing_as_zero():
    out = apply_label_policy(LABEL, dict(type='ones', missing_as_zero=True))
    np.testing.assert_array_equal(out, [1, 0, 1, 0, 1])


def test_label_list_with_none_is_read_as_missing():
    out = apply_label_policy([1, None, -1], 'zeros')
    np.testing.assert_array_equal(out, [1, np.nan, 0])


@pytest.mark.parametrize('policy, match', [
    ('u-ones', "unknown label policy 'u-ones'; expected one of"),
    (dict(type='lsr', low=0.5), "unknown keys \\['low'\\]"),
    (dict(type='ones', missing_as_zero='yes'), 'missing_as_zero must be a bool'),
])
def test_bad_policy_is_refused(policy, match):
    with pytest.raises(ValueError, match=match):
        check_label_policy(policy)


def test_register_a_policy():
    name = 'test_half'
    register_label_policy(name)(lambda num, rng: np.full(num, 0.5))
    try:
        np.testing.assert_array_equal(apply_label_policy([-1, 1], name), [0.5, 1])
        with pytest.raises(KeyError, match='already registered'):
            register_label_policy(name)(lambda num, rng: np.zeros(num))
    finally:
        LABEL_POLICIES.pop(name)
