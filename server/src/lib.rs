//! corral-server (under construction).
