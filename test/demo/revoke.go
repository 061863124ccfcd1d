package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	sigwatchv1alpha1 "github.com/sigwatch/sigwatch/api/v1alpha1"
	"github.com/sigwatch/sigwatch/internal/report"
	"github.com/sigwatch/sigwatch/test/stack"
)

// RevocationName is the demo's SignatureRevocation.
const RevocationName = "release-workflow-compromise"

// revoke ends the demo with the incident playbook (docs/incident-response.md): the fleet report, what a
// revocation of the release workflow's signatures of the last hour would do, the revocation applied
// (the release image turns SignatureRevoked) and deleted (it verifies again).
func (d *demo) revoke(ctx context.Context, res *Result) error {
	kubeconfig := res.KubeConfigPath
	d.say("\nIncident response (docs/incident-response.md). The fleet's signing state, as a person reads it:")
	d.sigwatch(ctx, kubeconfig, "report")
	data, err := d.runSigwatch(ctx, kubeconfig, "report", "-o", "json")
	if err != nil {
		return err
	}
	res.Report = &report.Report{}
	if err := json.Unmarshal(data, res.Report); err != nil {
		return fmt.Errorf("sigwatch report -o json: %w", err)
	}
	var list sigwatchv1alpha1.SignedImageList
	if err := d.env.Client.List(ctx, &list); err != nil {
		return err
	}
	res.SignedImages = list.Items

	x := &sigwatchv1alpha1.SignatureRevocation{
		TypeMeta:   metav1.TypeMeta{APIVersion: sigwatchv1alpha1.GroupVersion.String(), Kind: "SignatureRevocation"},
		ObjectMeta: metav1.ObjectMeta{Name: RevocationName},
		Spec: sigwatchv1alpha1.SignatureRevocationSpec{
			Reason: "demo: the release workflow's CI token leaked; see INC-4711",
			Signatures: []sigwatchv1alpha1.RevokedSignatures{{
				Keyless:      &sigwatchv1alpha1.Identity{Issuer: d.stack.OIDC.URL, SubjectRegExp: "https://github.com/yourorg/yourrepo/.+"},
				SignedAfter:  &metav1.Time{Time: time.Now().Add(-time.Hour).UTC().Truncate(time.Second)},
				SignedBefore: &metav1.Time{Time: time.Now().Add(time.Hour).UTC().Truncate(time.Second)},
			}},
		},
	}
	file := filepath.Join(d.dir, "revocation.yaml")
	data, err = yaml.Marshal(x)
	if err != nil {
		return err
	}
	if err := os.WriteFile(file, data, 0o600); err != nil {
		return err
	}
	d.say("\nThe release workflow's token leaked: revoke what yourorg/yourrepo's workflows signed in the last hour,\nby the time the timestamp authority certified (%s):\n\n%s", file, bytes.TrimSpace(data))
	d.sigwatch(ctx, kubeconfig, "report", "--revocation", file)
	data, err = d.runSigwatch(ctx, kubeconfig, "report", "--revocation", file, "-o", "json")
	if err != nil {
		return err
	}
	predicted := &report.Report{}
	if err := json.Unmarshal(data, predicted); err != nil {
		return fmt.Errorf("sigwatch report --revocation -o json: %w", err)
	}
	res.Prediction = predicted.Prediction

	apply := func() error {
		if d.hasKubectl() {
			d.kubectl(ctx, kubeconfig, "apply", "-f", file)
			return nil
		}
		return d.env.Client.Create(ctx, x.DeepCopy())
	}
	if err := d.step("Applying the SignatureRevocation, and waiting for the release image to turn SignatureRevoked", func() error {
		if err := apply(); err != nil {
			return err
		}
		var err error
		res.Revoked, err = d.waitFor(ctx, res.Images, "web", sigwatchv1alpha1.SignatureRevokedReason)
		return err
	}); err != nil {
		return err
	}
	for _, img := range res.Images {
		if img.Deployment == "web" {
			res.RevokedSignedImage = d.signedImage(ctx, img)
		}
	}
	if d.hasKubectl() {
		d.kubectl(ctx, kubeconfig, "get", "signedimages", "-n", Namespace)
		d.kubectl(ctx, kubeconfig, "get", "signaturerevocations")
	}
	remove := func() error {
		if d.hasKubectl() {
			d.kubectl(ctx, kubeconfig, "delete", "-f", file)
			return nil
		}
		return d.env.Client.Delete(ctx, x.DeepCopy())
	}
	if err := d.step("Deleting the SignatureRevocation (the image was signed again after the window, in real life), and waiting for it to verify", func() error {
		if err := remove(); err != nil {
			return err
		}
		var err error
		res.Restored, err = d.waitFor(ctx, res.Images, "web", sigwatchv1alpha1.VerifiedReason)
		return err
	}); err != nil {
		return err
	}
	if d.hasKubectl() {
		d.kubectl(ctx, kubeconfig, "get", "signedimages", "-n", Namespace)
	}
	d.sigwatch(ctx, kubeconfig, "report")
	return nil
}

func (d *demo) hasKubectl() bool {
	if d.o.Kubectl == "" {
		return false
	}
	_, err := exec.LookPath(d.o.Kubectl)
	return err == nil
}

// waitFor waits until the Deployment's image has the Verified reason, and returns every image's Verified
// condition then.
func (d *demo) waitFor(ctx context.Context, images []*Image, deployment, reason string) (map[string]*metav1.Condition, error) {
	deadline := time.Now().Add(60 * time.Second)
	for {
		got := map[string]*metav1.Condition{}
		for _, img := range images {
			got[img.Deployment], _ = d.verdict(ctx, img)
		}
		if c := got[deployment]; c != nil && c.Reason == reason {
			return got, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("%s is not %s; the manager log (%s) says:\n%s", deployment, reason,
				filepath.Join(d.dir, "manager.log"), stack.TailFile(filepath.Join(d.dir, "manager.log"), 20))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (d *demo) signedImage(ctx context.Context, img *Image) *sigwatchv1alpha1.SignedImage {
	var list sigwatchv1alpha1.SignedImageList
	if err := d.env.Client.List(ctx, &list, client.InNamespace(Namespace)); err != nil {
		return nil
	}
	for i := range list.Items {
		if si := &list.Items[i]; si.Spec.Image == img.Ref.Context().Name() && si.Spec.Digest == img.Ref.DigestStr() &&
			meta.FindStatusCondition(si.Status.Conditions, sigwatchv1alpha1.VerifiedCondition) != nil {
			return si
		}
	}
	return nil
}

// sigwatch shows a sigwatch command's output as `kubectl sigwatch ...` (kubectl finds bin/kubectl-sigwatch
// on PATH), or as `sigwatch ...` without kubectl.
func (d *demo) sigwatch(ctx context.Context, kubeconfig string, args ...string) {
	if !d.hasKubectl() {
		d.say("\n$ sigwatch %s", quoted(args))
		out, err := d.runSigwatch(ctx, kubeconfig, args...)
		if err != nil {
			d.say("(%v)", err)
		}
		_, _ = d.out.Write(out)
		return
	}
	plugins := filepath.Join(d.dir, "plugins")
	if err := os.MkdirAll(plugins, 0o755); err == nil {
		_ = os.Symlink(d.o.Sigwatch, filepath.Join(plugins, "kubectl-sigwatch"))
	}
	d.say("\n$ kubectl sigwatch %s", quoted(args))
	cmd := exec.CommandContext(ctx, d.o.Kubectl, append([]string{"sigwatch"}, args...)...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "PATH="+plugins+string(os.PathListSeparator)+os.Getenv("PATH"))
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		d.say("(kubectl sigwatch: %v)", err)
	}
	_, _ = d.out.Write(buf.Bytes())
}

// runSigwatch runs the sigwatch binary against the demo's cluster and returns its standard output.
func (d *demo) runSigwatch(ctx context.Context, kubeconfig string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, d.o.Sigwatch, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("sigwatch %s: %w\n%s", quoted(args), err, stderr.String())
	}
	return stdout.Bytes(), nil
}

func quoted(args []string) string {
	out := ""
	for i, a := range args {
		if i > 0 {
			out += " "
		}
		out += shellQuote(a)
	}
	return out
}
