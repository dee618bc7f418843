"""The OCPP 1.6 configuration keys and the OCPP 2.0.1 device-model variables they became
(OCPP 2.0.1 Part 2, the appendix on migrating from 1.6): one table for both sides — the
central system asking a 2.0.1 station with SetVariables/GetVariables, and the simulator's
2.0.1 station answering them from its 1.6 configuration."""

from __future__ import annotations

__all__ = ["KEY_OF", "VARIABLES", "WRITE_ONLY"]

VARIABLES: dict[str, tuple[str, str]] = {
    # 1.6 configuration key: (2.0.1 component, variable) — OCPP 2.0.1 Part 2 appendix
    "HeartbeatInterval": ("OCPPCommCtrlr", "HeartbeatInterval"),
    "WebSocketPingInterval": ("OCPPCommCtrlr", "WebSocketPingInterval"),
    "ResetRetries": ("OCPPCommCtrlr", "ResetRetries"),
    "TransactionMessageAttempts": ("OCPPCommCtrlr", "MessageAttempts"),
    "TransactionMessageRetryInterval": ("OCPPCommCtrlr", "MessageAttemptInterval"),
    "MeterValueSampleInterval": ("SampledDataCtrlr", "TxUpdatedInterval"),
    "MeterValuesSampledData": ("SampledDataCtrlr", "TxUpdatedMeasurands"),
    "StopTxnSampledData": ("SampledDataCtrlr", "TxEndedMeasurands"),
    "ClockAlignedDataInterval": ("AlignedDataCtrlr", "Interval"),
    "MeterValuesAlignedData": ("AlignedDataCtrlr", "Measurands"),
    "ConnectionTimeOut": ("TxCtrlr", "EVConnectionTimeOut"),
    "StopTransactionOnEVSideDisconnect": ("TxCtrlr", "StopTxOnEVSideDisconnect"),
    "StopTransactionOnInvalidId": ("TxCtrlr", "StopTxOnInvalidId"),
    "MaxEnergyOnInvalidId": ("TxCtrlr", "MaxEnergyOnInvalidId"),
    "AuthorizeRemoteTxRequests": ("AuthCtrlr", "AuthorizeRemoteStart"),
    "LocalAuthorizeOffline": ("AuthCtrlr", "LocalAuthorizeOffline"),
    "LocalPreAuthorize": ("AuthCtrlr", "LocalPreAuthorize"),
    "AllowOfflineTxForUnknownId": ("AuthCtrlr", "OfflineTxForUnknownIdEnabled"),
    "AuthorizationCacheEnabled": ("AuthCacheCtrlr", "Enabled"),
    "LocalAuthListEnabled": ("LocalAuthListCtrlr", "Enabled"),
    "SecurityProfile": ("SecurityCtrlr", "SecurityProfile"),
    "CpoName": ("SecurityCtrlr", "OrganizationName"),
}
"""The well-known 1.6 configuration keys and the device-model variable each became."""

WRITE_ONLY: dict[str, tuple[str, str]] = {
    # the security extension's AuthorizationKey: the HTTP Basic password (OCPP 2.0.1
    # Part 2, SecurityCtrlr) — written, never read back (GetVariables answers Rejected)
    "AuthorizationKey": ("SecurityCtrlr", "BasicAuthPassword"),
}
"""The write-only 1.6 keys: set like :data:`VARIABLES`, never read (not in a
GetConfiguration of everything, not in a base report)."""

KEY_OF: dict[tuple[str, str], str] = {where: key for key, where in (VARIABLES | WRITE_ONLY).items()}
"""(component, variable) → the 1.6 key."""
