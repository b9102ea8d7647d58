"""``python -m aura_assets.cli``: the aura command line."""

from aura_assets.cli import main

main()
