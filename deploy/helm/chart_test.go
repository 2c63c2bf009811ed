package helm

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/redoubt-systems/redoubt/config"
	"github.com/redoubt-systems/redoubt/internal/testserver"
)

const chart = "redoubt"

// helmBinary is Helm: $REDOUBT_HELM, or helm on the PATH. Without it the
// tests skip, unless REDOUBT_REQUIRE_HELM is set (CI installs it).
func helmBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("REDOUBT_HELM"); p != "" {
		return p
	}
	if p, err := exec.LookPath("helm"); err == nil {
		return p
	}
	if os.Getenv("REDOUBT_REQUIRE_HELM") != "" {
		t.Fatal("helm not found: set REDOUBT_HELM (go install helm.sh/helm/v4/cmd/helm@v4.3.2)")
	}
	t.Skip("helm not found (set REDOUBT_HELM)")
	return ""
}

func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, stderr bytes.Buffer
	cmd := exec.Command(helmBinary(t), args...)
	cmd.Stdout, cmd.Stderr = &out, &stderr
	err := cmd.Run()
	if err != nil {
		err = errors.New(strings.TrimSpace(stderr.String() + "\n" + out.String()))
	}
	return out.String(), err
}

// decoder decodes only the kinds the chart may render, rejecting unknown
// and duplicate fields: a typo in a template fails here, not in a cluster.
func decoder(t *testing.T) runtime.Decoder {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, batchv1.AddToScheme, networkingv1.AddToScheme, policyv1.AddToScheme} {
		if err := add(s); err != nil {
			t.Fatal(err)
		}
	}
	return serializer.NewCodecFactory(s, serializer.EnableStrict).UniversalDeserializer()
}

// rendered is one release's objects, by kind and name.
type rendered map[string]map[string]runtime.Object

func render(t *testing.T, args ...string) rendered {
	t.Helper()
	out, err := helm(t, append([]string{"template", "tenant-acme", chart, "--namespace", "tenant-acme"}, args...)...)
	if err != nil {
		t.Fatalf("helm template %v: %v", args, err)
	}
	dec := decoder(t)
	objs := rendered{}
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(out)))
	for {
		doc, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		obj, gvk, err := dec.Decode(doc, nil, nil)
		if err != nil {
			t.Fatalf("%v\n%s", err, doc)
		}
		var meta struct {
			Metadata struct{ Name string } `json:"metadata"`
		}
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			t.Fatal(err)
		}
		if objs[gvk.Kind] == nil {
			objs[gvk.Kind] = map[string]runtime.Object{}
		}
		objs[gvk.Kind][meta.Metadata.Name] = obj
	}
	return objs
}

func stripComments(doc []byte) []byte {
	var out []byte
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(line), []byte("#")) {
			out = append(out, line...)
			out = append(out, '\n')
		}
	}
	return out
}

func get[T runtime.Object](t *testing.T, objs rendered, kind, name string) T {
	t.Helper()
	obj, ok := objs[kind][name].(T)
	if !ok {
		t.Fatalf("no %s %s in %v", kind, name, objs.names())
	}
	return obj
}

func (r rendered) names() []string {
	var out []string
	for kind, byName := range r {
		for name := range byName {
			out = append(out, kind+"/"+name)
		}
	}
	return out
}

// The chart passes Helm's own lint, strictly, with its defaults and with a
// production tenant's values.
func TestLint(t *testing.T) {
	for _, args := range [][]string{nil, {"-f", "examples/acme.yaml"}} {
		if out, err := helm(t, append([]string{"lint", "--strict", chart}, args...)...); err != nil {
			t.Errorf("helm lint %v: %v\n%s", args, err, out)
		}
	}
}

// Values the chart must refuse, with a message naming what is wrong.
func TestRefusedValues(t *testing.T) {
	for _, tc := range []struct {
		set, want string
	}{
		{"backup.destinations[0].name=eu,backup.destinations[0].url=s3://b,backup.destinations[0].credentialsSecret=s", "need backup.recipients"},
		{"backup.recipients[0]=age1x,backup.destinations[0].name=eu,backup.destinations[0].url=s3://b", "credentialsSecret"},
		{"backup.recipients[0]=age1x,backup.destinations[0].name=EU_1,backup.destinations[0].url=s3://b,backup.destinations[0].credentialsSecret=s", "lowercase"},
		{"export.destination=nowhere", "not one of backup.destinations"},
		{"ingress.enabled=true", "ingress.host"},
		{"networkPolicy.egress.livekit[0].ports[0]=7880", "cidr"},
		// Typos are refused, as Redoubt refuses unknown configuration keys
		// (values.schema.json), rather than silently ignored.
		{"serverNmae=acme.example.org", "serverNmae"},
		{"backup.destination=eu", "destination"},
		{"memoryLimitShare=80", "memoryLimitShare"},
		{"destroy.confirm=acme.example.org", "is not serverName"},
		{"restore.from=eu,restore.identitySecret=k", "not one of backup.destinations"},
	} {
		_, err := helm(t, "template", "tenant-acme", chart, "--set", tc.set)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("--set %s: %v, want an error with %q", tc.set, err, tc.want)
		}
	}
}

// The chart's appVersion is the release of the binary in this tree, as is
// the image's label, and the image the chart runs is that release's.
func TestAppVersionFollowsRelease(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(chart, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct{ AppVersion string }
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	if c.AppVersion != config.Version {
		t.Fatalf("Chart.yaml appVersion %q, the binary is %q", c.AppVersion, config.Version)
	}
	dockerfile, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(dockerfile), "\nARG VERSION="+config.Version+"\n") {
		t.Fatalf("the Dockerfile's VERSION is not %s", config.Version)
	}
	sts := get[*appsv1.StatefulSet](t, render(t), "StatefulSet", name)
	if img := sts.Spec.Template.Spec.Containers[0].Image; img != "ghcr.io/redoubt-systems/redoubt:"+config.Version {
		t.Fatalf("image %s", img)
	}
}

// The server starts on the configuration the chart renders, answers the
// probes' /health, and the shared secret the chart makes and mounts
// registers an administrator (what provisioning tools do first).
func TestServesRenderedConfig(t *testing.T) {
	objs := render(t)
	sts := get[*appsv1.StatefulSet](t, objs, "StatefulSet", name)
	rendered := loadConfig(t, objs, sts.Spec.Template.Spec, sts.Spec.Template.Spec.Containers[0])
	srv := testserver.Start(t, func(c *config.Config) {
		*c = *rendered
		c.Listen = "127.0.0.1:0" // the test's listener; the pod's is 0.0.0.0
		// Validated again by Start, which reads the secret's file again.
		c.RegistrationSharedSecret = ""
	})
	if status, _ := srv.Anon().Do(t, "GET", "/health", nil); status != 200 {
		t.Fatalf("/health: %d", status)
	}
	if srv.Cfg.RegistrationSharedSecret == "" {
		t.Fatal("no shared secret mounted")
	}
	srv.RegisterAdmin(t, "root")
}
