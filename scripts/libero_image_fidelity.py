"""How far our LIBERO camera images are from LIBERO's own (robosuite's renderer, its default quality) at the same
simulation states: the mean absolute difference per channel (0-255) and the share of pixels off by more than 48
in some channel, per task and camera.

    MUJOCO_GL=egl python scripts/libero_image_fidelity.py [--tasks libero/goal/0 ...] [--size 128]
    MUJOCO_GL=egl python scripts/libero_image_fidelity.py --collision-meshes   # group 0 drawn too (before #14)

Ours draw in the light profile (no shadows, no reflections, no multisampling; ript_fast/envs/rendering.py), so the
images are close, not equal; what they must share is the scene: the geoms LIBERO shows (its visual meshes, not
the collision meshes of geom group 0). python_tests/test_render_engine.py bounds the same figures
(`ript_fast.envs.libero.reference.image_distances`).
"""

from __future__ import annotations

import argparse

from ript_fast.envs.libero import vec_env as libero_vec_env
from ript_fast.envs.libero.reference import image_distances
from ript_fast.envs.rendering import DEFAULT_GEOM_GROUPS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["libero/goal/0", "libero/spatial/0", "libero/object/0"])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--collision-meshes", action="store_true", help="draw geom group 0 too (as before #14)")
    args = parser.parse_args()
    if args.collision_meshes:
        libero_vec_env.GEOM_GROUPS = DEFAULT_GEOM_GROUPS  # MuJoCo's default: groups 0-2
    print("| task | camera | mean abs difference | pixels off by > 48 |\n|---|---|---:|---:|")
    for name in args.tasks:
        for key, (mean, share) in image_distances(name, args.size).items():
            print(f"| {name} | {key} | {mean:.1f} | {share:.3f} |", flush=True)


if __name__ == "__main__":
    main()
