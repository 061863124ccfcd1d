package stack

import _ "embed"

// fulcioCIMetadata is how the public-good Fulcio turns each CI's token into certificate extensions
// (fulcio-ci-metadata.yaml says where it comes from). The stack's Fulcio trusts each of its issuers as a
// "ci-provider" with these templates, as the public-good Fulcio trusts token.actions.githubusercontent.com,
// gitlab.com, agent.buildkite.com and oidc.circleci.com, so that its certificates carry the extensions
// real ones do.
//
//go:embed fulcio-ci-metadata.yaml
var fulcioCIMetadata string
