//! PLACEHOLDER: ipvsadm 1.31 output (`-L`, `-S`, `-c`, `--timeout`, `--daemon`).
