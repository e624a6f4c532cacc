"""Section II system model: array response, DFT codebook, path loss and the beam label."""
import numpy as np
import pytest

from mmtok_ros.beam.system_model import (Codebook, array_response, beam_gain_db, best_beam,
                                         path_loss_eq5_db, received_power_dbm)


@pytest.mark.parametrize('q_x,q_y', [(16, 1), (64, 1), (8, 4)])
def test_critically_sampled_dft_codebook_is_unitary(q_x, q_y):
    cb = Codebook(q_x=q_x, q_y=q_y, n_x=q_x, n_y=q_y, fov_x_deg=180, fov_y_deg=180)
    f = cb.vectors()
    assert f.shape == (q_x * q_y, q_x * q_y)
    np.testing.assert_allclose(f @ f.conj().T, np.eye(q_x * q_y), atol=1e-9)


def test_deepsense_codebook_has_64_unit_norm_overlapping_beams():
    cb = Codebook()                       # 16-element ULA, 64 beams over 90 degrees
    f = cb.vectors()
    assert f.shape == (64, 16)
    np.testing.assert_allclose(np.linalg.norm(f, axis=1), 1.0)
    assert abs(np.vdot(f[10], f[11])) > 0.5        # oversampled: neighbours overlap
    angles = np.degrees(cb.steering_angles_rad()[:, 0])
    assert angles.min() > -45 and angles.max() < 45 and np.all(np.diff(angles) > 0)


def test_152_beam_codebook_is_configurable():
    cb = Codebook(q_x=38, q_y=4, n_x=38, n_y=4, fov_x_deg=120, fov_y_deg=30)
    assert cb.n_beams == 152 and cb.vectors().shape == (152, 152)


@pytest.mark.parametrize('cb', [Codebook(), Codebook(q_x=8, q_y=4, n_x=8, n_y=4,
                                                     fov_x_deg=120, fov_y_deg=40)])
def test_each_beam_has_its_gain_peak_at_its_steering_direction(cb):
    theta, phi = cb.steering_angles_rad().T
    gain = beam_gain_db(cb, theta, phi)                  # (beams, beams): direction x beam
    np.testing.assert_array_equal(best_beam(gain), np.arange(cb.n_beams))
    np.testing.assert_allclose(np.diag(gain), 0.0, atol=1e-9)   # |f^H a| = 1 there
    assert np.all(gain <= 1e-9)


def test_array_response_is_a_kronecker_product_of_unit_norm():
    a = array_response(4, 3, 0.3, 0.1)
    assert a.shape == (12,)
    assert np.linalg.norm(a) == pytest.approx(1.0)
    assert a[0] == pytest.approx(1 / np.sqrt(12))


def test_path_loss_values_eq5_at_60_ghz():
    assert path_loss_eq5_db(1.0) == pytest.approx(68.0, abs=0.05)        # P0
    assert path_loss_eq5_db(10.0) == pytest.approx(88.0, abs=0.05)       # +10 eta per decade
    assert path_loss_eq5_db(10.0, eta=3.0) == pytest.approx(98.0, abs=0.05)
    assert path_loss_eq5_db(10.0, shadowing_db=2.5) == pytest.approx(90.5, abs=0.05)


def test_one_path_received_power_is_eq1_and_a_second_path_only_adds():
    cb = Codebook()
    one = received_power_dbm(cb, 10.0, [0.2], [0.0], [80.0])
    np.testing.assert_allclose(one, 10.0 + beam_gain_db(cb, 0.2, 0.0) - 80.0)
    two = received_power_dbm(cb, 10.0, [0.2, -0.4], [0.0, 0.0], [80.0, 85.0])
    assert np.all(two >= one - 1e-9)
    assert best_beam(two) == best_beam(one)          # the stronger path sets the beam


def test_a_stronger_second_path_moves_the_best_beam():
    cb = Codebook()
    power = received_power_dbm(cb, 10.0, [0.2, -0.4], [0.0, 0.0], [95.0, 80.0])
    expected = best_beam(beam_gain_db(cb, -0.4, 0.0))
    assert best_beam(power) == expected
