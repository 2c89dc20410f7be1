"""The ``--ray`` / ``--ray-address`` options shared by ``zse index`` and ``zse eval``."""

from __future__ import annotations

import functools

import click


def ray_options(func):
    @click.option(
        "--ray",
        "use_ray",
        is_flag=True,
        help="Run on Ray (the extra 'ray'): encoder actors on a cluster, or a local Ray on this machine.",
    )
    @click.option(
        "--ray-address",
        default=None,
        metavar="ADDR",
        help="Ray cluster to join: 'auto', or 'ray://HEAD:10001' (default: RAY_ADDRESS, or start a local Ray).",
    )
    @functools.wraps(func)
    def wrapper(*args, use_ray=False, ray_address=None, **kwargs):
        if ray_address and not use_ray:
            raise click.UsageError("--ray-address needs --ray")
        return func(*args, use_ray=use_ray, ray_address=ray_address, **kwargs)

    return wrapper
