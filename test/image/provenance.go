package image

import (
	"encoding/json"
	"strings"

	"github.com/sigwatch/sigwatch/test/stack"
)

// GitHubServerURL is GITHUB_SERVER_URL on github.com.
const GitHubServerURL = "https://github.com"

// GitHubProvenance returns the SLSA v1 build provenance predicate that actions/attest (the release
// workflow's attestation step) writes for a run with these claims: buildSLSAProvenancePredicate of
// @actions/attest (actions/toolkit packages/attest/src/provenance.ts), for the predicate type
// https://slsa.dev/provenance/v1.
func GitHubProvenance(c stack.GitHubClaims) []byte {
	// workflow_ref is "{repo}/{path}@{ref}".
	path, ref, _ := strings.Cut(strings.TrimPrefix(c.WorkflowRef, c.Repository+"/"), "@")
	predicate := map[string]any{
		"buildDefinition": map[string]any{
			"buildType": "https://actions.github.io/buildtypes/workflow/v1",
			"externalParameters": map[string]any{
				"workflow": map[string]any{
					"ref":        ref,
					"repository": GitHubServerURL + "/" + c.Repository,
					"path":       path,
				},
			},
			"internalParameters": map[string]any{
				"github": map[string]any{
					"event_name":          c.EventName,
					"repository_id":       c.RepositoryID,
					"repository_owner_id": c.RepositoryOwnerID,
					"runner_environment":  c.RunnerEnvironment,
				},
			},
			"resolvedDependencies": []any{map[string]any{
				"uri":    "git+" + GitHubServerURL + "/" + c.Repository + "@" + c.Ref,
				"digest": map[string]any{"gitCommit": c.SHA},
			}},
		},
		"runDetails": map[string]any{
			"builder": map[string]any{"id": GitHubServerURL + "/" + c.JobWorkflowRef},
			"metadata": map[string]any{
				"invocationId": GitHubServerURL + "/" + c.Repository + "/actions/runs/" + c.RunID + "/attempts/" + c.RunAttempt,
			},
		},
	}
	data, _ := json.Marshal(predicate) // maps and slices of strings always marshal
	return data
}
