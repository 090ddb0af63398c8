"""Frameworks as data: each control names the measured checks that decide it (see checks.py).

A check is ``name`` or ``name:argument``; a control passes only if every one of its checks passes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Control:
    id: str
    title: str
    checks: tuple[str, ...]


@dataclass(frozen=True)
class Framework:
    key: str
    title: str
    controls: tuple[Control, ...]


def _c(id_: str, title: str, *checks: str) -> Control:
    return Control(id_, title, checks)


PCI_DSS = Framework("pci-dss", "PCI DSS v4.0 Requirement 10: log and monitor all access", (
    _c("10.2.1", "Audit logs are enabled and active for all system components", "sources_present", "conformance"),
    _c("10.2.1.1", "Individual user access to cardholder data is logged", "coverage:data_access"),
    _c("10.2.1.2", "Actions taken by anyone with administrative access are logged", "coverage:admin"),
    _c("10.2.1.3", "All access to audit logs is logged", "reads_recorded"),
    _c("10.2.1.4", "Invalid logical access attempts are logged", "coverage:failed_access"),
    _c("10.2.1.5", "Changes to identification and authentication credentials are logged", "coverage:account"),
    _c("10.2.1.6", "Initialization, stopping or pausing of audit logs is logged", "coverage:system"),
    _c("10.2.1.7", "Creation and deletion of system-level objects is logged", "coverage:object_change"),
    _c("10.2.2", "Each record has user, event type, time, success/failure, origin and affected resource",
       "fields"),
    _c("10.3.1", "Read access to audit logs is limited and recorded", "reads_recorded"),
    _c("10.3.2", "Audit logs are protected from modification", "integrity"),
    _c("10.3.3", "Audit logs are promptly secured in a central store that is hard to alter", "signed_checkpoints"),
    _c("10.3.4", "Change detection runs on audit logs", "integrity_monitored"),
    _c("10.4.1", "Audit logs are reviewed (automated mechanisms, 10.4.1.1)", "detection", "alerts_reviewed"),
    _c("10.5.1", "Audit log history is kept 12 months, the last 3 months immediately available",
       "retention:12m:3m"),
    _c("10.6.1", "System clocks are synchronized", "clock"),
    _c("10.6.2", "Systems are configured to the correct and consistent time", "clock"),
    _c("10.7.1", "Failures of critical security control systems are detected and alerted", "detection"),
    _c("10.7.2", "Failures of the audit logging mechanism are detected and alerted", "detection",
       "sources_present"),
    _c("10.7.3", "Failures of critical security controls are responded to promptly", "failure_alerts"),
))

HIPAA = Framework("hipaa", "HIPAA Security Rule (45 CFR 164)", (
    _c("164.312(b)", "Audit controls: record and examine activity in systems with ePHI",
       "sources_present", "coverage:data_access", "fields", "integrity", "reads_recorded"),
    _c("164.308(a)(1)(ii)(D)", "Information system activity review (audit logs, access reports, incidents)",
       "detection", "alerts_reviewed", "reads_recorded"),
    _c("164.316(b)(2)(i)", "Documentation kept for 6 years", "retention:6y"),
))

SOC2 = Framework("soc2", "SOC 2 Trust Services Criteria (Common Criteria)", (
    _c("CC6.1", "Logical access security: access is authenticated and recorded",
       "coverage:authentication", "coverage:failed_access", "reads_recorded"),
    _c("CC7.2", "System components are monitored for anomalies", "detection", "sources_present", "clock"),
    _c("CC7.3", "Security events are evaluated", "alerts_reviewed", "failure_alerts"),
))

NIST = Framework("nist-800-53", "NIST SP 800-53 Rev. 5, Audit and Accountability (AU)", (
    _c("AU-2", "Event logging", "coverage:authentication", "coverage:data_access", "coverage:admin",
       "coverage:account"),
    _c("AU-3", "Content of audit records", "fields"),
    _c("AU-4", "Audit log storage capacity", "conformance"),
    _c("AU-5", "Response to audit logging process failures", "detection", "failure_alerts"),
    _c("AU-6", "Audit record review, analysis and reporting", "alerts_reviewed", "reads_recorded"),
    _c("AU-7", "Audit record reduction and report generation", "reads_recorded"),
    _c("AU-8", "Time stamps", "clock"),
    _c("AU-9", "Protection of audit information", "integrity", "integrity_monitored"),
    _c("AU-10", "Non-repudiation", "signed_checkpoints"),
    _c("AU-11", "Audit record retention", "retention:1y"),
    _c("AU-12", "Audit record generation", "sources_present", "conformance"),
))

GDPR = Framework("gdpr", "GDPR (Regulation (EU) 2016/679)", (
    _c("Art. 5(1)(e)", "Storage limitation: personal data kept no longer than necessary", "retention_limited"),
    _c("Art. 17", "Right to erasure", "erasure"),
    _c("Art. 30", "Records of processing activities (who processed and read the data)", "reads_recorded",
       "sources_present"),
    _c("Art. 32", "Security of processing (integrity, pseudonymization)", "integrity", "erasure"),
))

ISO27001 = Framework("iso27001", "ISO/IEC 27001:2022 Annex A", (
    _c("A.8.15", "Logging: activities, exceptions, faults and events are recorded, protected and analysed",
       "sources_present", "fields", "integrity", "detection"),
    _c("A.8.17", "Clock synchronization", "clock"),
))

FRAMEWORKS = {f.key: f for f in (PCI_DSS, HIPAA, SOC2, NIST, GDPR, ISO27001)}
