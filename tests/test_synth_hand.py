"""The synthetic hand and camera: anatomy, articulation limits, gestures, viewpoints, framing."""
import math

import pytest
import torch

from benchmarks.synth.camera import (angle_between, direction_from_viewpoint,
                                     directions_outside_cap, frame_hand, look_rotation,
                                     orbit_step, project, random_tangent, sample_intrinsics,
                                     uniform_directions, viewpoint_from_direction)
from benchmarks.joints import JOINT_NAMES
from benchmarks.synth.hand import (BONES, GESTURES, JOINT_LIMITS_DEG, PARENTS,
                                   bone_lengths, flexion_angles, forward_kinematics,
                                   gesture_angles, mean_shape, middle_scale, sample_poses,
                                   sample_shapes)

TIPS = [4, 8, 12, 16, 20]


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_joint_order_is_freihand():
    assert len(PARENTS) == len(JOINT_NAMES) == 21 and len(BONES) == 20
    assert JOINT_NAMES[9:11] == ("middle_mcp", "middle_pip")             # FreiHAND's scale bone
    # each digit is a chain wrist -> 4 joints, thumb first, little last
    for d in range(5):
        first = 1 + 4 * d
        assert PARENTS[first] == 0
        assert [PARENTS[first + k] for k in (1, 2, 3)] == [first, first + 1, first + 2]


def test_bone_lengths_are_constant_across_poses():
    shapes = sample_shapes(3, gen(1))
    lengths = []
    for g in range(len(GESTURES)):
        angles, wrist = sample_poses(torch.full((3,), g), gen(g))
        lengths.append(bone_lengths(forward_kinematics(shapes, angles, wrist).joints))
    lengths = torch.stack(lengths)                                        # (G, 3, 20)
    assert torch.allclose(lengths, lengths[0].expand_as(lengths), atol=1e-6)
    digit_bones = lengths[0].view(3, 5, 4)[:, :, 1:]                       # wrist->base excluded
    assert torch.allclose(digit_bones, shapes.bone, atol=1e-6)


def test_sampled_angles_stay_within_anatomical_limits():
    gesture = torch.arange(2000) % len(GESTURES)
    angles, _ = sample_poses(gesture, gen(2))
    lim = torch.deg2rad(JOINT_LIMITS_DEG)
    assert (angles >= lim[..., 0] - 1e-6).all() and (angles <= lim[..., 1] + 1e-6).all()
    # the noise reaches the limits sometimes: clamping is exercised, not vacuous
    assert ((angles - lim[..., 1]).abs() < 1e-6).any()


def test_finger_bends_equal_the_flexion_angles():
    """PIP/DIP (thumb MCP/IP) are hinges: the angle between neighbouring bones is |flexion|."""
    angles, wrist = sample_poses(torch.arange(50) % len(GESTURES), gen(3))
    joints = forward_kinematics(sample_shapes(50, gen(4)), angles, wrist).joints
    bends = flexion_angles(joints)
    assert torch.allclose(bends[..., 1], angles[..., 2].abs(), atol=1e-4)
    assert torch.allclose(bends[..., 2], angles[..., 3].abs(), atol=1e-4)
    assert bends[:, 1:, 1:].max() <= math.radians(110) + 1e-4


def test_scale_is_middle_proximal_bone_of_a_few_centimetres():
    assert middle_scale(forward_kinematics(mean_shape(), gesture_angles()[:1]).joints).item() == \
        pytest.approx(0.028, abs=1e-6)
    s = middle_scale(forward_kinematics(sample_shapes(500, gen(5)),
                                        gesture_angles()[0].expand(500, 5, 4)).joints)
    assert 0.023 < s.min() and s.max() < 0.034 and 0.026 < s.mean() < 0.030


def test_gestures_are_distinct_and_anatomically_meaningful():
    joints = forward_kinematics(mean_shape(len(GESTURES)), gesture_angles()).joints
    reach = (joints[:, TIPS] - joints[:, :1]).norm(dim=-1)                # tip-wrist (G, 5)
    by = dict(zip(GESTURES, reach))
    assert (by["fist"][1:] < 0.7 * by["open"][1:]).all()
    assert by["point"][1] > 1.5 * by["point"][2:].max()
    assert (by["peace"][1:3] > 1.5 * by["peace"][3:].max()).all()
    assert by["call"][0] > 0.1 and by["call"][4] > 1.5 * by["call"][1:4].max()
    for name in ("ok", "pinch"):                                          # thumb meets index
        j = joints[GESTURES.index(name)]
        assert (j[4] - j[8]).norm() < 0.015
    # every two gestures differ by at least one joint moved by several centimetres
    pairwise = (joints[:, None] - joints[None]).norm(dim=-1).amax(-1)
    assert pairwise[~torch.eye(len(GESTURES), dtype=torch.bool)].min() > 0.03


def test_viewpoint_round_trip_and_conventions():
    vp = torch.tensor([[0.0, 0.0], [180.0, 0.0], [90.0, 0.0], [30.0, 45.0], [-120.0, -60.0]])
    v = direction_from_viewpoint(vp)
    assert torch.allclose(v[0], torch.tensor([0.0, 0.0, 1.0]), atol=1e-6)       # palm side
    assert torch.allclose(v[2], torch.tensor([1.0, 0.0, 0.0]), atol=1e-6)       # thumb side
    back = viewpoint_from_direction(v)
    assert torch.allclose(back[[0, 2, 3, 4]], vp[[0, 2, 3, 4]], atol=1e-4)
    assert abs(abs(back[1, 0].item()) - 180.0) < 1e-4


def test_look_rotation_looks_at_the_hand_with_a_proper_rotation():
    v = uniform_directions(256, gen(6))
    R = look_rotation(v, torch.rand(256, generator=gen(7)) * 6.28)
    assert torch.allclose(R @ R.transpose(1, 2), torch.eye(3).expand(256, 3, 3), atol=1e-5)
    assert torch.allclose(torch.linalg.det(R), torch.ones(256), atol=1e-5)
    # the hand centre (origin) seen from the camera at v is straight ahead
    ahead = (R @ (-v)[..., None])[..., 0]
    assert torch.allclose(ahead, torch.tensor([0.0, 0.0, 1.0]).expand(256, 3), atol=1e-5)


def test_cameras_avoid_the_forearm_cap_and_cover_the_rest():
    axis = torch.tensor([0.0, -1.0, 0.0]).expand(4000, 3)
    v = directions_outside_cap(axis, 30.0, gen(8))
    assert ((v * axis).sum(-1) <= math.cos(math.radians(30.0)) + 1e-6).all()
    # still all around: the opposite hemisphere holds about half the directions
    assert 0.45 < (v[:, 1] > 0).float().mean() < 0.6


def test_intrinsics_scale_with_resolution():
    k64 = sample_intrinsics(100, 64, gen(9))
    k224 = sample_intrinsics(100, 224, gen(9))
    assert torch.allclose(k224[:, :2], k64[:, :2] * 224 / 64, rtol=1e-5)
    assert (k224[:, 0, 0] >= 380).all() and (k224[:, 0, 0] <= 620).all()
    assert ((k64[:, :2, 2] - 32).abs() <= 0.64 + 1e-5).all()


def test_frame_hand_sizes_the_hand_by_its_bounding_sphere_and_centres_its_box():
    n, res = 64, 128
    joints = forward_kinematics(sample_shapes(n, gen(10)),
                                *sample_poses(torch.arange(n) % len(GESTURES), gen(11))).joints
    centred = joints - joints.mean(1, keepdim=True)
    R = look_rotation(uniform_directions(n, gen(12)), torch.zeros(n))
    K = sample_intrinsics(n, res, gen(13))
    diameter = torch.full((n,), 0.6 * res)
    target = torch.full((n, 2), 60.0)
    room = torch.full((n,), 0.7 * res)
    t = frame_hand(centred, R, K, diameter, target, room)
    uv = project(K, centred @ R.transpose(1, 2) + t[:, None])
    size = (uv.amax(1) - uv.amin(1)).amax(-1)
    mid = 0.5 * (uv.amax(1) + uv.amin(1))
    assert (mid - target).abs().max() < 0.5
    assert (size <= room + 0.5).all()
    # unless the box had to fit, the depth is where the bounding sphere spans `diameter`
    f = 0.5 * (K[:, 0, 0] + K[:, 1, 1])
    sphere = 2 * f * centred.norm(dim=-1).amax(1) / t[:, 2]
    free = size < room - 0.5
    assert free.sum() > n // 2
    assert torch.allclose(sphere[free], diameter[free], rtol=1e-4)


def test_orbit_steps_are_symmetric_great_circle_steps():
    v = uniform_directions(100, gen(14))
    R = look_rotation(v, torch.zeros(100))
    axis = random_tangent(v, gen(15))
    step = torch.full((100,), math.radians(8.0))
    v_left, R_left = orbit_step(v, R, axis, -step)
    v_right, _ = orbit_step(v, R, axis, step)
    assert torch.allclose(angle_between(v_left, v), step, atol=1e-5)
    assert torch.allclose(angle_between(v_right, v), step, atol=1e-5)
    mid = (v_left + v_right) / (v_left + v_right).norm(dim=-1, keepdim=True)
    assert torch.allclose(mid, v, atol=1e-5)
    # the orbited camera still looks at the hand centre
    ahead = (R_left @ (-v_left)[..., None])[..., 0]
    assert torch.allclose(ahead, torch.tensor([0.0, 0.0, 1.0]).expand(100, 3), atol=1e-5)
