"""The batched capsule / plate renderer: silhouettes, depth, occlusion, anti-aliasing."""
import math

import torch

from benchmarks.synth.render import Capsules, Lighting, Plate, composite, rasterize, shade

RES = 64
F = 100.0


def intrinsics(batch: int = 1) -> torch.Tensor:
    K = torch.tensor([[F, 0.0, RES / 2], [0.0, F, RES / 2], [0.0, 0.0, 1.0]])
    return K.expand(batch, 3, 3).clone()


def capsules(a, b, ra, rb, material) -> Capsules:
    """One image of capsules from Python lists."""
    a, b = torch.tensor([a], dtype=torch.float32), torch.tensor([b], dtype=torch.float32)
    P = a.shape[1]
    return Capsules(a, b, torch.tensor([ra]), torch.tensor([rb]), torch.tensor([material]),
                    torch.zeros(1, P, 3), torch.zeros(1, P, dtype=torch.bool))


def image_of(g, values: torch.Tensor, fill: float) -> torch.Tensor:
    B, H, W = g.shape
    out = torch.full((B * H * W,), fill, dtype=values.dtype)
    out[g.pixels] = values
    return out.view(B, H, W)


def test_sphere_silhouette_depth_and_normal():
    g = rasterize(capsules([[0, 0, 0.5]], [[0, 0, 0.5]], [0.05], [0.05], [3]), None,
                  intrinsics(), RES, RES)
    radius_px = F * 0.05 / 0.5
    assert abs(g.pixels.numel() - math.pi * radius_px ** 2) < 0.05 * math.pi * radius_px ** 2
    # pixel (32, 32) is centred at (32.5, 32.5): 0.707 px off the axis
    depth = image_of(g, g.depth, float("inf"))[0, 32, 32].item()
    bulge = math.sqrt(radius_px ** 2 - 0.5) / radius_px * 0.05
    assert abs(depth - (0.5 - bulge)) < 1e-4
    normal = image_of(g, g.normal[2], 0.0)[0, 32, 32].item()
    assert normal < -0.99                                                # faces the camera
    assert (image_of(g, g.material, -1)[0][image_of(g, g.depth, 0.0)[0] > 0] == 3).all()


def test_nearer_shape_wins_whatever_the_order():
    near = ([-0.02, 0, 0.4], [-0.02, 0, 0.4], 0.03, 0.03, 1)
    far = ([0.02, 0, 0.6], [0.02, 0, 0.6], 0.05, 0.05, 2)
    maps = []
    for order in ((near, far), (far, near)):
        g = rasterize(capsules(*map(list, zip(*order))), None, intrinsics(), RES, RES)
        maps.append(image_of(g, g.material, -1))
    assert torch.equal(maps[0], maps[1])
    centre_near = (round(RES / 2 + F * -0.02 / 0.4), RES // 2)
    assert maps[0][0, centre_near[1], centre_near[0]] == 1
    assert (maps[0] == 2).any()


def test_capsule_pointing_at_the_camera_occludes_with_its_near_cap():
    """Along the axis of a capsule seen end-on, the visible surface is its near end cap."""
    caps = capsules([[0, 0, 0.40], [0, 0, 0.45]], [[0, 0, 0.60], [0, 0, 0.45]],
                    [0.03, 0.02], [0.03, 0.02], [1, 2])
    g = rasterize(caps, None, intrinsics(), RES, RES)
    centre = RES // 2
    assert image_of(g, g.material, -1)[0, centre, centre] == 1
    assert abs(image_of(g, g.depth, 0.0)[0, centre, centre] - 0.37) < 1e-3


def test_plate_face_is_drawn_at_its_thickness_from_either_side():
    square = torch.tensor([[-0.05, -0.05, 0.5], [0.05, -0.05, 0.5], [0.05, 0.05, 0.5],
                           [-0.05, 0.05, 0.5]])
    for corners in (square, square.flip(0)):
        plate = Plate(corners[None], torch.tensor([0.01]), torch.tensor([4]),
                      torch.tensor([[0.0, 0.0, -1.0]]))
        no_caps = capsules([[0, 0, 0.5]], [[0, 0, 0.5]], [0.0], [0.0], [0])
        g = rasterize(no_caps, plate, intrinsics(), RES, RES)
        c = RES // 2
        assert abs(image_of(g, g.depth, 0.0)[0, c, c] - 0.49) < 1e-5
        assert image_of(g, g.normal[2], 0.0)[0, c, c] < -0.999
        assert image_of(g, g.material, -1)[0, c, c] == 4
        # the shading normal bends outwards across the plate (edge 3 -> 0 runs along y)
        ny = image_of(g, g.normal[1], 0.0)[0, :, c]
        assert ny[c - 8] < -0.2 and ny[c + 8] > 0.2
        # the face spans 0.1 m at 0.49 m: about 20 pixels, plus the rounded rim
        row = image_of(g, g.material, -1)[0, c]
        assert 20 <= (row == 4).sum() <= 26


def test_rasterize_is_deterministic_over_a_batch():
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(8, 12, 3, generator=gen) * 0.1 - 0.05
    a[..., 2] += 0.5
    b = a + torch.rand(8, 12, 3, generator=gen) * 0.05
    r = torch.rand(8, 12, generator=gen) * 0.01 + 0.005
    caps = Capsules(a, b, r, r * 0.8, torch.randint(0, 3, (8, 12), generator=gen),
                    torch.zeros(8, 12, 3), torch.zeros(8, 12, dtype=torch.bool))
    g1 = rasterize(caps, None, intrinsics(8), RES, RES)
    g2 = rasterize(caps, None, intrinsics(8), RES, RES)
    for name in ("pixels", "depth", "normal", "material", "alpha", "fringe", "fringe_alpha"):
        assert torch.equal(getattr(g1, name), getattr(g2, name)), name
    # each image only depends on its own shapes: rendering image 3 alone gives the same pixels
    single = Capsules(*(t[3:4] for t in (caps.a, caps.b, caps.ra, caps.rb, caps.material,
                                         caps.palmar, caps.nail)))
    g3 = rasterize(single, None, intrinsics(1), RES, RES)
    assert torch.equal(image_of(g1, g1.depth, 0.0)[3], image_of(g3, g3.depth, 0.0)[0])


def test_silhouette_is_antialiased_and_background_kept_elsewhere():
    g = rasterize(capsules([[0, 0, 0.5]], [[0, 0, 0.5]], [0.05], [0.05], [0]), None,
                  intrinsics(), RES, RES)
    flat = Lighting(torch.tensor([[0.0, 0.0, -1.0]]), torch.ones(1, 3), torch.tensor([1.0]),
                    torch.tensor([0.0]), torch.tensor([0.0]))
    colour = shade(g, torch.ones(1, 1, 3), torch.ones(1, 3), flat)
    assert torch.equal(colour, torch.ones_like(colour))
    background = torch.zeros(1, 3, RES, RES)
    img = composite(colour, g, background.clone())[0, 0]
    partial = (img > 0.05) & (img < 0.95)
    assert partial.sum() > 20                                            # a soft edge exists
    ring = torch.zeros(RES * RES, dtype=torch.bool)
    ring[g.pixels[g.alpha < 1]] = True
    ring[g.fringe] = True
    assert (partial & ~ring.view(RES, RES)).sum() == 0                   # only on the edge
    assert img[:10].abs().max() == 0                                     # background untouched
