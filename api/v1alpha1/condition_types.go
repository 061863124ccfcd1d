package v1alpha1

// Condition types. Every condition has positive polarity: True is the good state, except Stalled, whose
// True means something is wrong that waiting will not fix.
const (
	// ReadyCondition is the summary condition that kstatus, Argo CD and Flux read. On a SignedImage it is
	// True when the image is verified; on an ImageSignaturePolicy it is True once the policy compiled and
	// its trust root and keys loaded.
	ReadyCondition = "Ready"

	// VerifiedCondition on a SignedImage is True when the image digest satisfies every matching policy,
	// False when at least one policy proved it unverified (a Failed reason below), and Unknown when it
	// could not be decided (an Unknown reason below).
	VerifiedCondition = "Verified"

	// StalledCondition is True when waiting will not change things. On an ImageSignaturePolicy: the
	// policy cannot work as written; it needs a change to its spec or to an object it refers to. On a
	// SignedImage: the verdict is settled and not good (Verified=False, a policy that covers the image is
	// not ready, or no policy covers it under --no-match-policy=warn), so kstatus reports Failed rather
	// than InProgress.
	StalledCondition = "Stalled"

	// InTransparencyLogCondition on a SignedImage says how the live transparency log check of its
	// accepted signatures went (policies whose transparencyLog.online is not Off): True when every entry
	// was proven in the log's current, consistent tree (the message names the log, the entry index, the
	// tree size and when); False (EntryNotInLog, LogInconsistent); Unknown (LogUnavailable). Absent
	// when no accepted signature has an entry to check.
	InTransparencyLogCondition = "InTransparencyLog"

	// ConsistentCondition on a TransparencyLog is True while every checkpoint sigwatch read of the log is
	// consistent with the last one it verified, and False (LogInconsistent) once two signed checkpoints
	// disagree: a split view, a fork or a rollback, an incident for everyone who trusts the log.
	ConsistentCondition = "Consistent"
)

// Reasons of the live transparency log check (InTransparencyLog, and Verified under online: Require).
const (
	// EntryInLogReason (InTransparencyLog=True): every entry checked is in the log's current tree, and
	// that tree is consistent with every checkpoint verified before.
	EntryInLogReason = "EntryInLog"

	// EntryNotInLogReason (False): the log's current signed tree does not hold the signature's entry at
	// its index (another entry is there, or the tree is smaller than the index).
	EntryNotInLogReason = "EntryNotInLog"

	// LogInconsistentReason (False): the log showed a checkpoint that is not consistent with one
	// verified before (a fork, a split view or a rollback); the TransparencyLog keeps both as evidence.
	LogInconsistentReason = "LogInconsistent"

	// UnexpectedSignerReason (InTransparencyLog=False): a Rekor v1 log that holds an accepted signature
	// of the image also holds entries for the image's digest by a signer that no policy covering the
	// image trusts: someone else signed the image. The message names them. It never changes the verdict.
	UnexpectedSignerReason = "UnexpectedSigner"

	// LogUnavailableReason (Unknown): the log's checkpoint or tiles could not be read, or its checkpoint
	// does not verify with the log's key. Under Monitor the verdict is unchanged; under Require the image
	// is Unknown, as in a registry outage, and the last good result is kept.
	LogUnavailableReason = "LogUnavailable"

	// LogConsistentReason (Consistent=True on a TransparencyLog) and LogReadyReason (Ready=True): the
	// last checkpoint was read, its signature verified and its consistency proven.
	LogConsistentReason = "Consistent"
	LogReadyReason      = "CheckpointVerified"
)

// Reasons for Verified=True and Ready=True.
const (
	// VerifiedReason: every matching policy found a valid signature from an allowed signer.
	VerifiedReason = "Verified"

	// PolicyReadyReason: the policy compiled and its trust root and keys loaded.
	PolicyReadyReason = "PolicyReady"

	// AuditOnlyReason (Ready=True on a SignedImage whose Verified is not True): only policies in Audit
	// mode failed or could not decide; every Enforce policy verified the image (or none covers it).
	AuditOnlyReason = "AuditOnly"
)

// Reasons for Verified=False: the image was examined and does not satisfy a policy.
const (
	// SignatureMissingReason: no signature exists for the digest.
	SignatureMissingReason = "SignatureMissing"

	// UntrustedSignerReason: signatures exist, but none from an identity or key the policy allows.
	UntrustedSignerReason = "UntrustedSigner"

	// InvalidSignatureReason: a signature is cryptographically wrong or bound to another digest.
	InvalidSignatureReason = "InvalidSignature"

	// TransparencyLogMissingReason: the policy requires a transparency log entry and the signature has
	// none.
	TransparencyLogMissingReason = "TransparencyLogMissing"

	// AttestationMissingReason: a required attestation is absent or not signed by an allowed signer.
	AttestationMissingReason = "AttestationMissing"

	// AttestationFailedReason: a required attestation is present but one of its conditions is false.
	AttestationFailedReason = "AttestationFailed"

	// TrustRootMismatchReason: a signature's transparency log, timestamp authority or certificate
	// authority is not in the policy's trust root. More often a configuration mistake (a private
	// Sigstore without spec.trustedRoot, or the wrong trusted_root.json) than tampering; the message says
	// which part was not found.
	TrustRootMismatchReason = "TrustRootMismatch"

	// SignatureRevokedReason: every signature (or attestation) a policy accepted matches a
	// SignatureRevocation; the message names the revocation and its reason.
	SignatureRevokedReason = "SignatureRevoked"

	// SignatureTooOldReason: every signature (or attestation) a policy accepted was made longer ago than
	// its authority's maxSignatureAge, by its trusted signing time (or has no trusted signing time).
	SignatureTooOldReason = "SignatureTooOld"
)

// Reasons for Verified=Unknown: the verdict could not be reached; the last good result is kept.
const (
	// NoMatchingPolicyReason: no ImageSignaturePolicy covers the image.
	NoMatchingPolicyReason = "NoMatchingPolicy"

	// RegistryUnavailableReason: the registry could not be reached or returned an error.
	RegistryUnavailableReason = "RegistryUnavailable"

	// TrustedRootUnavailableReason: the Sigstore trust root could not be loaded.
	TrustedRootUnavailableReason = "TrustedRootUnavailable"

	// VerificationErrorReason: verification failed for a reason that is neither the image's nor the
	// registry's fault.
	VerificationErrorReason = "VerificationError"

	// PendingReason: the image has not been verified yet.
	PendingReason = "Pending"

	// CredentialsForbiddenReason: the manager may not read a Secret the verification needs: an image pull
	// secret of the pods (or their service account), or a policy's key Secret. Its RBAC denies it, or its
	// --secret-access mode leaves out the namespace. Verifying with fewer credentials than the pods have
	// would prove nothing, so the image is not verified; the message names the Secret and what to grant.
	// Retried with backoff, so a grant takes effect without a restart.
	CredentialsForbiddenReason = "CredentialsForbidden"

	// ExemptReason: every policy that covers the image is excluded by an ImageSignatureExemption, which
	// the message names with its reason and expiry. The image is not judged (Verified=Unknown) and is
	// Ready. It is judged again the moment the exemption expires or is deleted.
	ExemptReason = "Exempt"

	// PolicyNotReadyReason: a policy that covers the image is not Ready (its Stalled condition says why:
	// a field, a key or a trust root). Waiting will not help, so the image is Stalled too; it is judged
	// again as soon as the policy, or the Secret or ConfigMap it reads, changes.
	PolicyNotReadyReason = "PolicyNotReady"
)

// Reasons for Stalled=True and Ready=False on an ImageSignaturePolicy.
const (
	// InvalidPolicyReason: a field the CRD schema cannot check is wrong (a regular expression that does
	// not compile, a CEL condition that does not compile).
	InvalidPolicyReason = "InvalidPolicy"

	// KeyUnavailableReason: a public key does not parse, or its Secret is missing.
	KeyUnavailableReason = "KeyUnavailable"

	// TrustRootFallbackReason (Ready=True): the public-good trust root could not be updated through
	// TUF, and an older one (the embedded snapshot, or the last root TUF delivered) is used meanwhile.
	// The message says why; the sigwatch_trust_root_fallback metric is 1.
	TrustRootFallbackReason = "TrustRootFallback"

	// ExemptionExpiredReason (Ready=False on an ImageSignatureExemption): its expiresAt has passed; it no
	// longer applies.
	ExemptionExpiredReason = "Expired"

	// ExemptionActiveReason (Ready=True on an ImageSignatureExemption): it applies.
	ExemptionActiveReason = "Active"

	// RevocationAppliedReason (Ready=True on a SignatureRevocation): every entry compiled and applies.
	RevocationAppliedReason = "Applied"

	// InvalidRevocationReason (Ready=False on a SignatureRevocation): an entry cannot be applied (a
	// regular expression that does not compile, a public key that does not parse); the message names the
	// field. The entries that compiled apply.
	InvalidRevocationReason = "InvalidRevocation"

	// TrustedRootUnavailableReason (above) is also used when a policy's trusted root ConfigMap is missing
	// or does not parse.
)

const (
	// ReverifyAnnotation on a SignedImage forces a verification whenever its value changes:
	// kubectl annotate si NAME sigwatch.dev/reverify="$(date +%s)" --overwrite
	ReverifyAnnotation = "sigwatch.dev/reverify"

	// VerifiedLabel on a SignedImage repeats its Verified condition, for server-side filtering:
	// "true", "false", "unknown", or "exempt" (Unknown because every policy exempts it):
	// kubectl get si -A -l sigwatch.dev/verified=false
	VerifiedLabel = "sigwatch.dev/verified"

	// ManagedByLabel marks the SignedImages that sigwatch created for running pods (value
	// ManagedByValue). Only those are garbage-collected; SignedImages made by hand are never deleted.
	ManagedByLabel = "app.kubernetes.io/managed-by"

	// ManagedByValue is the value of ManagedByLabel on SignedImages that sigwatch manages.
	ManagedByValue = "sigwatch"
)
