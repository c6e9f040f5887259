"""config → plan: parameter grids, the plan of builds and query settings, lossless early stop."""
