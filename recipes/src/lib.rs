//! corral-recipes: coordination recipes on corral-client (filled in by the recipes work).
