package helm

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"

	"github.com/redoubt-systems/redoubt/config"
)

const name = "tenant-acme-redoubt"

// With its defaults and with a production tenant's values, the chart
// renders one isolated tenant: the kinds expected and no others, one
// replica, non-root with a read-only root and nothing to escalate with,
// limits, no token, probes on /health, egress to DNS and what the values
// name only, and a configuration Redoubt's own parser accepts.
func TestIsolation(t *testing.T) {
	for _, tc := range []struct {
		name       string
		args       []string
		kinds      []string
		serverName string
		cidrs      []string // egress allowed besides DNS
		dests      []string
		export     bool
	}{
		{"defaults", nil,
			[]string{"NetworkPolicy", "PersistentVolumeClaim", "PodDisruptionBudget", "Secret", "Service", "ServiceAccount", "StatefulSet"},
			"example.org", nil, nil, false},
		{"production tenant", []string{"-f", "examples/acme.yaml"},
			[]string{"CronJob", "Ingress", "NetworkPolicy", "PersistentVolumeClaim", "PodDisruptionBudget", "Secret", "Service", "ServiceAccount", "StatefulSet"},
			"acme.example.org", []string{"203.0.113.10/32", "52.218.0.0/17", "52.219.168.0/24"}, []string{"eu-west", "eu-central"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := render(t, tc.args...)
			var kinds []string
			for k := range objs {
				kinds = append(kinds, k)
			}
			slices.Sort(kinds)
			if !slices.Equal(kinds, tc.kinds) {
				t.Fatalf("kinds %v, want %v", kinds, tc.kinds)
			}
			sts := get[*appsv1.StatefulSet](t, objs, "StatefulSet", name)
			if sts.Spec.Replicas == nil || *sts.Spec.Replicas != 1 {
				t.Fatalf("replicas %v: the database has one writer", sts.Spec.Replicas)
			}
			pod := sts.Spec.Template.Spec
			checkPod(t, "server", pod)
			checkProbes(t, pod.Containers[0])
			if sa := get[*corev1.ServiceAccount](t, objs, "ServiceAccount", name); sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
				t.Error("the service account mounts a token")
			}
			if pod.ServiceAccountName != name {
				t.Errorf("service account %q", pod.ServiceAccountName)
			}
			checkEgress(t, get[*networkingv1.NetworkPolicy](t, objs, "NetworkPolicy", name), sts.Spec.Template.Labels, tc.cidrs)
			pdb := get[*policyv1.PodDisruptionBudget](t, objs, "PodDisruptionBudget", name)
			if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 || pdb.Spec.MinAvailable != nil {
				t.Errorf("disruption budget %+v: one replica cannot stay available through a drain", pdb.Spec)
			}
			if !matches(pdb.Spec.Selector.MatchLabels, sts.Spec.Template.Labels) {
				t.Error("the disruption budget selects no pod of the tenant")
			}
			if pvc := get[*corev1.PersistentVolumeClaim](t, objs, "PersistentVolumeClaim", name+"-data"); pvc.Annotations["helm.sh/resource-policy"] != "" {
				t.Error("the volume is kept on uninstall by default")
			}

			cfg := loadConfig(t, objs, pod, pod.Containers[0])
			if cfg.ServerName != tc.serverName {
				t.Errorf("server_name %s", cfg.ServerName)
			}
			if cfg.Limits.Memory.Percent != 80 {
				t.Errorf("limits.memory %+v does not follow the container's limit", cfg.Limits.Memory)
			}
			if grace := time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second; grace <= cfg.ShutdownTimeout.D() {
				t.Errorf("the pod is killed after %v, the server takes up to %v to stop", grace, cfg.ShutdownTimeout.D())
			}
			var dests []string
			for _, d := range cfg.Backup.Destinations {
				dests = append(dests, d.Name)
			}
			// With destinations, a new release's migrations wait for a
			// snapshot sent to them (backup.before_upgrade).
			if !slices.Equal(dests, tc.dests) || !cfg.Backup.BeforeUpgrade {
				t.Errorf("destinations %v (before upgrade %v), want %v", dests, cfg.Backup.BeforeUpgrade, tc.dests)
			}

			if tc.export {
				cj := get[*batchv1.CronJob](t, objs, "CronJob", name+"-export")
				jp := cj.Spec.JobTemplate.Spec.Template.Spec
				checkPod(t, "export job", jp)
				if a := jp.Containers[0].Args; !slices.Equal(a, []string{"export", "--config", "/etc/redoubt/config/redoubt.yaml", "--to", "eu-west"}) {
					t.Errorf("export job args %v", a)
				}
				if cj.Spec.Suspend == nil || !*cj.Spec.Suspend {
					t.Error("the export runs on a schedule by default")
				}
				// The ReadWriteOnce volume is mounted where the server runs.
				aff := jp.Affinity.PodAffinity.RequiredDuringSchedulingIgnoredDuringExecution
				if len(aff) != 1 || aff[0].TopologyKey != "kubernetes.io/hostname" || !matches(aff[0].LabelSelector.MatchLabels, sts.Spec.Template.Labels) {
					t.Errorf("export job affinity %+v", aff)
				}
				loadConfig(t, objs, jp, jp.Containers[0])
			}
		})
	}
	objs := render(t, "--set", "persistence.keepOnUninstall=true")
	if pvc := get[*corev1.PersistentVolumeClaim](t, objs, "PersistentVolumeClaim", name+"-data"); pvc.Annotations["helm.sh/resource-policy"] != "keep" {
		t.Error("keepOnUninstall does not keep the volume")
	}
}

// Restoring a tenant into an empty volume: an init container, as isolated
// as the server, restores from the destination named, with the age
// identity mounted in it alone.
func TestRestoreMode(t *testing.T) {
	objs := render(t, "-f", "examples/acme.yaml", "--set", "restore.from=eu-central,restore.identitySecret=acme-age,restore.at=2026-12-06T10:00:00Z")
	pod := get[*appsv1.StatefulSet](t, objs, "StatefulSet", name).Spec.Template.Spec
	checkPod(t, "server", pod)
	if len(pod.InitContainers) != 1 {
		t.Fatalf("%d init containers", len(pod.InitContainers))
	}
	restore := pod.InitContainers[0]
	want := []string{"restore", "--from", "eu-central", "--config", "/etc/redoubt/config/redoubt.yaml", "--identity", "/etc/redoubt/identity/age.key",
		"--data", "/data", "--if-empty", "--at", "2026-12-06T10:00:00Z"}
	if !slices.Equal(restore.Args, want) {
		t.Errorf("restore args %v", restore.Args)
	}
	if !slices.ContainsFunc(restore.VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == "identity" && m.ReadOnly }) ||
		slices.ContainsFunc(pod.Containers[0].VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == "identity" }) {
		t.Error("the age identity is mounted in the server, or not read-only in the restore")
	}
	loadConfig(t, objs, pod, restore)
	if p := get[*appsv1.StatefulSet](t, render(t), "StatefulSet", name).Spec.Template.Spec; len(p.InitContainers) != 0 {
		t.Error("a restore without restore.from")
	}
}

// Destroying a tenant: with destroy.confirm naming it, the server is
// stopped and a Job, as isolated as the server, runs redoubt destroy on
// the same volumes and configuration.
func TestDestroyMode(t *testing.T) {
	objs := render(t, "-f", "examples/acme.yaml", "--set", "destroy.confirm=acme.example.org")
	sts := get[*appsv1.StatefulSet](t, objs, "StatefulSet", name)
	if sts.Spec.Replicas == nil || *sts.Spec.Replicas != 0 {
		t.Fatalf("replicas %v while destroying", sts.Spec.Replicas)
	}
	job := get[*batchv1.Job](t, objs, "Job", name+"-destroy")
	pod := job.Spec.Template.Spec
	checkPod(t, "destroy job", pod)
	if a := pod.Containers[0].Args; !slices.Equal(a, []string{"destroy", "--config", "/etc/redoubt/config/redoubt.yaml", "--confirm", "acme.example.org"}) {
		t.Errorf("destroy job args %v", a)
	}
	if cfg := loadConfig(t, objs, pod, pod.Containers[0]); len(cfg.Backup.Destinations) != 2 {
		t.Errorf("destroy reaches %d destinations, want both", len(cfg.Backup.Destinations))
	}
	if _, ok := render(t)["Job"]; ok {
		t.Error("a destroy job without destroy.confirm")
	}
}

// With serverNameWellKnown, the ingress also routes the server name's
// /.well-known/matrix/ to the server, under the same certificate.
func TestIngressWellKnown(t *testing.T) {
	objs := render(t, "-f", "examples/acme.yaml", "--set", "ingress.serverNameWellKnown=true")
	ing := get[*networkingv1.Ingress](t, objs, "Ingress", name)
	if len(ing.Spec.Rules) != 2 || ing.Spec.Rules[1].Host != "acme.example.org" || ing.Spec.Rules[1].HTTP.Paths[0].Path != "/.well-known/matrix" ||
		!slices.Equal(ing.Spec.TLS[0].Hosts, []string{"matrix.acme.example.org", "acme.example.org"}) {
		t.Errorf("ingress %+v", ing.Spec)
	}
	if ing := get[*networkingv1.Ingress](t, render(t, "-f", "examples/acme.yaml"), "Ingress", name); len(ing.Spec.Rules) != 1 {
		t.Errorf("the server name's well-known routed by default: %+v", ing.Spec.Rules)
	}
}

// Every pod of the release (server, export job, destroy job) is one the
// network policy selects, and gets the pull secrets and placement the
// values give: an export beside the server on a tainted node, or from a
// private registry, runs as the server does.
func TestPodsShareSettings(t *testing.T) {
	objs := render(t, "-f", "examples/acme.yaml", "--set", "destroy.confirm=acme.example.org",
		"--set", "imagePullSecrets[0].name=registry", "--set", "nodeSelector.pool=tenants",
		"--set", "tolerations[0].key=tenants,tolerations[0].operator=Exists")
	policy := get[*networkingv1.NetworkPolicy](t, objs, "NetworkPolicy", name)
	pods := map[string]corev1.PodTemplateSpec{
		"server":  get[*appsv1.StatefulSet](t, objs, "StatefulSet", name).Spec.Template,
		"export":  get[*batchv1.CronJob](t, objs, "CronJob", name+"-export").Spec.JobTemplate.Spec.Template,
		"destroy": get[*batchv1.Job](t, objs, "Job", name+"-destroy").Spec.Template,
	}
	for what, pod := range pods {
		if !matches(policy.Spec.PodSelector.MatchLabels, pod.Labels) {
			t.Errorf("%s: the network policy does not select it (labels %v)", what, pod.Labels)
		}
		spec := pod.Spec
		if len(spec.ImagePullSecrets) != 1 || spec.ImagePullSecrets[0].Name != "registry" || spec.NodeSelector["pool"] != "tenants" ||
			len(spec.Tolerations) != 1 || spec.Tolerations[0].Key != "tenants" {
			t.Errorf("%s: pull secrets %v, node selector %v, tolerations %v", what, spec.ImagePullSecrets, spec.NodeSelector, spec.Tolerations)
		}
	}
}

// checkPod asserts the isolation every pod of the tenant has.
func checkPod(t *testing.T, what string, pod corev1.PodSpec) {
	t.Helper()
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Errorf("%s: a service account token is mounted", what)
	}
	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: pod security context %+v", what, psc)
	}
	if pod.HostNetwork || pod.HostPID || pod.HostIPC {
		t.Errorf("%s: shares the host's namespaces", what)
	}
	for _, v := range pod.Volumes {
		if v.HostPath != nil {
			t.Errorf("%s: host path volume %s", what, v.Name)
		}
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%s: %d containers", what, len(pod.Containers))
	}
	for _, c := range append(pod.InitContainers, pod.Containers...) {
		checkContainer(t, what+" "+c.Name, c)
	}
}

func checkContainer(t *testing.T, what string, c corev1.Container) {
	t.Helper()
	sc := c.SecurityContext
	switch {
	case sc == nil:
		t.Fatalf("%s: no container security context", what)
	case sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser == 0:
		t.Errorf("%s: may run as root", what)
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Errorf("%s: the root file system is writable", what)
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.Privileged == nil || *sc.Privileged:
		t.Errorf("%s: may escalate privileges", what)
	case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0:
		t.Errorf("%s: capabilities %+v", what, sc.Capabilities)
	case sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
		t.Errorf("%s: seccomp %+v", what, sc.SeccompProfile)
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := c.Resources.Requests[r]; !ok {
			t.Errorf("%s: no %s request", what, r)
		}
		if _, ok := c.Resources.Limits[r]; !ok {
			t.Errorf("%s: no %s limit", what, r)
		}
	}
}

func checkProbes(t *testing.T, c corev1.Container) {
	t.Helper()
	for what, p := range map[string]*corev1.Probe{"startup": c.StartupProbe, "liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/health" || p.HTTPGet.Port.String() != "http" {
			t.Errorf("%s probe %+v, want GET /health", what, p)
		}
	}
	if !slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == "http" }) {
		t.Error("no port named http")
	}
}

// checkEgress asserts that the tenant's pods may reach DNS and the given
// addresses, and nothing else.
func checkEgress(t *testing.T, np *networkingv1.NetworkPolicy, labels map[string]string, cidrs []string) {
	t.Helper()
	if !matches(np.Spec.PodSelector.MatchLabels, labels) {
		t.Fatal("the network policy selects no pod of the tenant")
	}
	if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) || !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
		t.Fatalf("policy types %v", np.Spec.PolicyTypes)
	}
	var allowed []string
	for i, rule := range np.Spec.Egress {
		if len(rule.To) == 0 || len(rule.Ports) == 0 {
			t.Fatalf("egress rule %d allows any destination or any port: %+v", i, rule)
		}
		if i == 0 {
			for _, p := range rule.Ports {
				if p.Port == nil || p.Port.IntValue() != 53 {
					t.Errorf("the DNS rule allows port %v", p.Port)
				}
			}
			continue
		}
		for _, to := range rule.To {
			if to.IPBlock == nil || to.PodSelector != nil || to.NamespaceSelector != nil || len(to.IPBlock.Except) != 0 {
				t.Fatalf("egress rule %d: %+v", i, to)
			}
			allowed = append(allowed, to.IPBlock.CIDR)
		}
	}
	if !slices.Equal(allowed, cidrs) {
		t.Errorf("egress to %v, want %v", allowed, cidrs)
	}
	for _, rule := range np.Spec.Ingress {
		if len(rule.Ports) == 0 {
			t.Errorf("ingress on any port: %+v", rule)
		}
	}
}

// loadConfig mounts what container c of pod mounts from the rendered Secrets (and
// stand-ins for the credentials Secrets the operator makes) under a
// temporary root, and loads the rendered redoubt.yaml with Redoubt's own
// parser, as the server in that container would.
func loadConfig(t *testing.T, objs rendered, pod corev1.PodSpec, c corev1.Container) *config.Config {
	t.Helper()
	root := t.TempDir()
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m.MountPath
		if err := os.MkdirAll(filepath.Join(root, m.MountPath), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	secretOf := map[string]string{} // volume -> secret
	for _, v := range pod.Volumes {
		if v.Secret != nil {
			secretOf[v.Name] = v.Secret.SecretName
		}
	}
	for vol, secret := range secretOf {
		dir := filepath.Join(root, mounts[vol])
		data := map[string]string{"access_key": "AKID", "secret_key": "s3cret"} // the operator's own Secret
		if s, ok := objs["Secret"][secret].(*corev1.Secret); ok {
			data = map[string]string{}
			for k, v := range s.StringData {
				data[k] = v
			}
			for k, v := range s.Data {
				data[k] = string(v)
			}
		}
		for k, v := range data {
			if err := os.WriteFile(filepath.Join(dir, k), []byte(v), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	yml, err := os.ReadFile(filepath.Join(root, "/etc/redoubt/config/redoubt.yaml"))
	if err != nil {
		t.Fatalf("the server's --config is not mounted: %v", err)
	}
	// Every path is the pod's; under root here.
	text := strings.NewReplacer("/etc/redoubt/", root+"/etc/redoubt/", "/data/", root+"/data/").Replace(string(yml))
	cfg, err := config.Parse([]byte(text))
	if err != nil {
		t.Fatalf("Redoubt refuses the rendered configuration: %v\n%s", err, yml)
	}
	if !strings.HasPrefix(cfg.Database, root+mounts["data"]+"/") {
		t.Errorf("database %s is not on the data volume", cfg.Database)
	}
	return cfg
}

func matches(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}
