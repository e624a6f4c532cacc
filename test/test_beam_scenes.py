"""Synthetic beam scenes: deterministic, labelled by Eqs. 1-7 one frame ahead, radar cube."""
import numpy as np
import pytest

from mmtok_ros.beam.radar import DEEPSENSE_RADAR, cube_to_points, synthetic_cube
from mmtok_ros.beam.scenes import (BS_XYZ_M, FACADE_Y_M, BeamScene, _angles, beam_powers_dbm,
                                   make_scene, scene_frames, synthetic_dataset)
from mmtok_ros.beam.system_model import Codebook, best_beam, beam_gain_db
from mmtok_ros.model import preset
from mmtok_ros.sim.scene import VEHICLES, Track

CFG = preset('beam-mini')


@pytest.fixture(scope='module')
def small():
    return synthetic_dataset(CFG, n_scenes=2, frames_per_scene=8, seed=3, progress=False)


def test_same_seed_same_windows_other_seed_other_scenes(small):
    again = synthetic_dataset(CFG, n_scenes=2, frames_per_scene=8, seed=3, progress=False)
    for m in CFG.modalities:
        np.testing.assert_array_equal(small.frames[m], again.frames[m])
    np.testing.assert_array_equal(small.labels, again.labels)
    assert make_scene(0, 3) != make_scene(0, 4)


def test_windows_have_the_model_shapes_and_next_frame_labels(small):
    assert len(small) == 2 * (8 - CFG.n_frames)
    assert small.labels.dtype == np.int64 and small.labels.min() >= 0
    assert small.labels.max() < CFG.n_classes
    batch, labels = small.batch(np.arange(len(small)))
    assert batch['image'].shape == (len(small), 5, 3, 32, 32)
    assert batch['lidar'].shape == (len(small), 5, 3, 32, 32)
    assert batch['radar'].shape == (len(small), 5, CFG.n_radar_points, 4)
    assert batch['gps'].shape == (len(small), 5, 2)
    _, beams = scene_frames(make_scene(0, 3), CFG, 8, Codebook())
    np.testing.assert_array_equal(small.labels[small.groups == 0], beams[CFG.n_frames:])
    np.testing.assert_array_equal(small.window_frames[0], np.arange(5))


def test_a_truck_on_the_line_of_sight_moves_the_beam_to_the_facade_reflection():
    car = Track('far', 40.0, 0.0)
    clear = BeamScene(0, 0, car, Track('near', -60.0, 0.0), VEHICLES['box_truck'])
    rx = np.array([40.0, -11.75, 1.5])
    # the truck in the near lane where the line of sight to the car crosses it (the path via
    # the facade crosses the near lane 8 m closer to the pole, clear of the 8.5 m truck)
    x_cross = 40.0 * (-4.75 / -11.75)
    blocked = BeamScene(0, 0, car, Track('near', x_cross, 0.0), VEHICLES['box_truck'])
    cb = Codebook()
    rng = np.random.default_rng(0)
    los_beam = best_beam(beam_gain_db(cb, *_angles(BS_XYZ_M, rx)))
    image = rx * [1, -1, 1] + [0, 2 * FACADE_Y_M, 0]
    facade_beam = best_beam(beam_gain_db(cb, *_angles(BS_XYZ_M, image)))
    assert los_beam != facade_beam
    assert best_beam(beam_powers_dbm(clear, [0.0], cb, rng))[0] == los_beam
    assert best_beam(beam_powers_dbm(blocked, [0.0], cb, rng))[0] == facade_beam


def test_radar_points_recover_a_single_scatterer():
    rng = np.random.default_rng(1)
    cube = synthetic_cube([12.0], [3.0], [np.arcsin(0.25)], [1.0], rng)
    assert cube.shape == (4, 256, 128) and cube.dtype == np.complex64
    velocity, sin_az, level, depth = cube_to_points(cube, 4)[0]
    assert depth * DEEPSENSE_RADAR.max_range_m == pytest.approx(12.0, abs=DEEPSENSE_RADAR.range_bin_m)
    assert velocity * DEEPSENSE_RADAR.max_velocity_mps == pytest.approx(
        3.0, abs=DEEPSENSE_RADAR.velocity_bin_mps)
    assert sin_az == pytest.approx(0.25, abs=0.07)
    assert level == 1.0


def test_radar_refuses_a_real_valued_cube():
    with pytest.raises(ValueError, match='complex'):
        cube_to_points(np.zeros((4, 8, 8)), 4)
