package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	k8schain "github.com/google/go-containerregistry/pkg/authn/kubernetes"
	corev1 "k8s.io/api/core/v1"
)

// MaxConfigFileBytes bounds a registry config file: a docker config with credentials for a few hundred
// registries is far smaller.
const MaxConfigFileBytes = 1 << 20

// ConfigFile is a docker config JSON file ({"auths": {"registry.example.com": {"auth": "..."}}}, the
// content of a kubernetes.io/dockerconfigjson Secret) as registry credentials, for a manager that reads no
// Secrets through the API: the Secret is mounted into its pod instead. Its entries match registries as
// the kubelet matches a pull secret's (go-containerregistry's pkg/authn/kubernetes). The kubelet updates a
// mounted Secret in place, so the file is checked (one stat) on every Load and read again when it
// changed. Credential helpers and stores (credHelpers, credsStore) are not run.
type ConfigFile struct {
	path string

	mu      sync.Mutex
	stat    fileStamp // of the content loaded
	loaded  bool
	kc      authn.Keychain
	version string
	err     error
}

// fileStamp identifies a version of the file: a mounted Secret's update replaces the file (a new inode
// behind the ..data symlink), an edit in place changes its size or modification time.
type fileStamp struct {
	exists  bool
	size    int64
	modTime time.Time
	info    os.FileInfo
}

func (s fileStamp) same(o fileStamp) bool {
	if s.exists != o.exists {
		return false
	}
	if !s.exists {
		return true
	}
	return s.size == o.size && s.modTime.Equal(o.modTime) && os.SameFile(s.info, o.info)
}

// NewConfigFile reads registry credentials from the docker config JSON file at path.
func NewConfigFile(path string) *ConfigFile { return &ConfigFile{path: path} }

// Path is the file's path.
func (f *ConfigFile) Path() string { return f.path }

// Load returns the credentials of the file's current content, and a version that names that content
// (a hash; "absent" when there is no file, which is no credentials: the Secret mounted as optional does
// not exist). A file that is larger than MaxConfigFileBytes, not a regular file, or not docker config JSON
// is an error naming the file, until it changes.
func (f *ConfigFile) Load() (authn.Keychain, string, error) {
	st, err := stampOf(f.path)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil {
		// A stat error other than not-found (permissions): said every time, not cached.
		return nil, "", fmt.Errorf("registry config file %s: %w", f.path, err)
	}
	if f.loaded && f.stat.same(st) {
		return f.kc, f.version, f.err
	}
	f.kc, f.version, f.err = read(f.path, st)
	f.stat, f.loaded = st, true
	return f.kc, f.version, f.err
}

func stampOf(path string) (fileStamp, error) {
	info, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fileStamp{}, nil
	}
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{exists: true, size: info.Size(), modTime: info.ModTime(), info: info}, nil
}

func read(path string, st fileStamp) (authn.Keychain, string, error) {
	if !st.exists {
		return authn.NewMultiKeychain(), "absent", nil
	}
	if !st.info.Mode().IsRegular() {
		return nil, "", fmt.Errorf("registry config file %s: not a regular file", path)
	}
	if st.size > MaxConfigFileBytes {
		return nil, "", fmt.Errorf("registry config file %s: %d bytes, more than the %d allowed", path, st.size, MaxConfigFileBytes)
	}
	file, err := os.Open(path)
	if err != nil {
		return nil, "", fmt.Errorf("registry config file %s: %w", path, err)
	}
	defer func() { _ = file.Close() }()
	data, err := io.ReadAll(io.LimitReader(file, MaxConfigFileBytes+1))
	if err != nil {
		return nil, "", fmt.Errorf("registry config file %s: %w", path, err)
	}
	if len(data) > MaxConfigFileBytes {
		return nil, "", fmt.Errorf("registry config file %s: more than the %d bytes allowed", path, MaxConfigFileBytes)
	}
	kc, err := ParseDockerConfig(data)
	if err != nil {
		return nil, "", fmt.Errorf("registry config file %s: %w", path, err)
	}
	sum := sha256.Sum256(data)
	return kc, hex.EncodeToString(sum[:8]), nil
}

// ParseDockerConfig reads docker config JSON ({"auths": {...}}) as a keychain. An object without "auths"
// is refused: it is most likely the legacy .dockercfg format or another file mounted by mistake, and would
// otherwise mean "no credentials" without a word.
func ParseDockerConfig(data []byte) (authn.Keychain, error) {
	var probe struct {
		Auths map[string]json.RawMessage `json:"auths"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("not docker config JSON: %w", err)
	}
	if probe.Auths == nil {
		return nil, errors.New(`not docker config JSON: no "auths" object (expected the .dockerconfigjson of a kubernetes.io/dockerconfigjson Secret)`)
	}
	secret := corev1.Secret{Type: corev1.SecretTypeDockerConfigJson, Data: map[string][]byte{corev1.DockerConfigJsonKey: data}}
	kc, err := k8schain.NewFromPullSecrets(context.Background(), []corev1.Secret{secret})
	if err != nil {
		return nil, fmt.Errorf("not docker config JSON: %w", err)
	}
	return kc, nil
}
