//! Property tests for sh, dh and mh.
