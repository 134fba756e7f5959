//! UDP in IPVS (`ip_vs_proto_udp.c`): a single state, IP_VS_UDP_S_NORMAL,
//! printed "UDP". Every packet, in either direction, restarts the timer with
//! the UDP timeout (default 300 s, `--set ... udp`). There is no state
//! change, so a UDP connection keeps the INACTIVE flag it was created with:
//! UDP connections always count in InActConn, never in ActiveConn.

/// Default UDP timeout (udp_timeouts[IP_VS_UDP_S_NORMAL] = 5 min).
pub const DEFAULT_TIMEOUT_SECS: u32 = 5 * 60;

/// State name in `ipvsadm -Lc`.
pub const STATE_NAME: &str = "UDP";
