"""Shared by both tiers: the scripts folder is importable as it is for the scripts."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
