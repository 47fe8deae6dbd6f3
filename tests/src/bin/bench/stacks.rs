//! The PAM session stacks the benchmarks compare (auth and account by pam_permit).

use vigil_e2e::{Bus, BusKind, Harness, PamStack, paths};

/// pam_vigil over vigild's private socket.
pub fn vigil_socket(h: &Harness) -> PamStack {
    PamStack::vigil_session(&paths::pam_module(), &h.vigil_args())
}

/// pam_vigil over `bus`, the socket argument pointing nowhere so that only the bus can
/// register the session.
pub fn vigil_bus(h: &Harness, bus: &Bus) -> PamStack {
    PamStack::vigil_session(&paths::pam_module(), &h.vigil_args().bus(bus.address()).socket(h.path("no-such-socket")))
}

/// The harness's bus served by `kind`: the first bus, else the second.
pub fn bus_of(h: &Harness, kind: BusKind) -> &Bus {
    if h.bus().kind() == kind { h.bus() } else { h.second_bus() }
}
