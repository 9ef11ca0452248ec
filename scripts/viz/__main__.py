"""``python -m chronotope.scripts.viz`` = ``chronotope viz``."""

import tyro

from chronotope.scripts.viz import VizConfig, viz

viz(tyro.cli(VizConfig))
