//! PLACEHOLDER: ipvsadm 1.31 command-line grammar and `-R` input.
