"""Simulators of the external systems, speaking their real protocols on loopback, with fault injection.

They are how the demo runs and how tests run; they are never mocks of lienthong's own code.
"""

from lienthong.sandbox.base import FAULT_KINDS, FaultKind, FaultPlan, Peer, Received
from lienthong.sandbox.emc import EmcSandbox
from lienthong.sandbox.portal import PortalSandbox

__all__ = ["FAULT_KINDS", "EmcSandbox", "FaultKind", "FaultPlan", "Peer", "PortalSandbox", "Received"]
