// The bound, for the benchmark only (bench/peer.ts): Usher's API writes and
// SMTP sends for new invitations, issued by a plain client-go client (the
// typed and dynamic clients only: no informer, no cache, no work queue, no
// leader election) with the operator's concurrency (four workers, a pool of
// five SMTP connections). It reads the invitations the bench created, one JSON
// object per line on stdin (the create's answer), and delivers each: what it
// reaches is what the API server, etcd and the SMTP sink allow for Usher's
// writes, so Usher ÷ bound says what the operator's own machinery costs.
//
// The rest config is a kubeconfig's, with QPS -1 as ctrl.GetConfig() leaves the
// peer's (no client-side rate limit). On SIGUSR1 it logs its heap after a full
// GC (a line "memory"); it logs "controller running" once its clients are
// made, and exits when stdin ends and everything read is delivered.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"usher.dev/bench/peer-go/usher"
)

type bound struct {
	invitations dynamic.NamespaceableResourceInterface
	kube        kubernetes.Interface
	mail        *usher.MailPool
	from        string
	namespace   string
	baseURL     string
	instance    string
	events      sync.WaitGroup
}

// deliver issues, for one new invitation, the writes Usher's reconciles make,
// in Usher's order and with Usher's bodies (src/controller/reconciler.ts: act's
// addFinalizer and issue, discloseLink's writeStatusIfChanged, sendMail,
// writeStatusIfChanged; the peer's reconcile() in ../main.go does the same
// with controller-runtime), each write waiting for the one before, as a
// reconcile does. Events go out asynchronously, as Usher's recorder
// (src/runtime/events.ts) and client-go's broadcaster send them. When Usher's
// sequence changes, change this function and the peer's reconcile().
func (b *bound) deliver(ctx context.Context, u *unstructured.Unstructured) error {
	invitations := b.invitations.Namespace(u.GetNamespace())
	// 1. The finalizer (decide.ts's withFinalizer: before the first token).
	u.SetFinalizers(append(u.GetFinalizers(), usher.MembershipFinalizer))
	u, err := invitations.Update(ctx, u, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("finalizer: %w", err)
	}
	inv := usher.ReadInvitation(u)

	// 2. The record Secret with a fresh token's hash, created with the first mail attempt marked.
	tok := usher.IssueToken()
	rec := usher.NewRecord(inv, b.namespace, 1, tok, time.Now())
	rec.Mail = &usher.MailState{Attempts: 1, AttemptStartedAt: usher.IsoMillis(time.Now())}
	secrets := b.kube.CoreV1().Secrets(b.namespace)
	created, err := secrets.Create(ctx, usher.SecretFromRecord(rec), metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("record: %w", err)
	}
	rec.ResourceVersion = created.ResourceVersion
	startPhase := inv.Prev.Phase

	// 3. The status with the link (Pending, Sending), no Event: a step, not an outcome.
	link := usher.LinkFor(b.baseURL, tok.Selector, tok.Verifier)
	if inv, err = b.writeStatus(ctx, inv, inv.Held(rec, link, time.Now()), false, ""); err != nil {
		return fmt.Errorf("status Pending: %w", err)
	}

	// 4. The send (the attempt is marked already), the record marked sent.
	started := rec
	if err := b.mail.Send(inv.Email, usher.Message(b.from, inv.Email, link, rec.ExpiresAt)); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	done := started
	done.Mail = &usher.MailState{Attempts: 1, SentAt: usher.IsoSeconds(time.Now())}
	if _, err := secrets.Update(ctx, usher.SecretFromRecord(done), metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("sent mark: %w", err)
	}

	// 5. The status Sent; one Event for the outcome (reconciler.ts's recordOutcome).
	if _, err := b.writeStatus(ctx, inv, inv.Held(done, link, time.Now()), true, startPhase); err != nil {
		return fmt.Errorf("status Sent: %w", err)
	}
	return nil
}

// writeStatus is writeStatusIfChanged: the status subresource when the status differs; for the
// reconcile's outcome, an Event when the phase differs from the one it started from (startPhase).
func (b *bound) writeStatus(ctx context.Context, inv usher.Invitation, s usher.Status, outcome bool, startPhase string) (usher.Invitation, error) {
	if inv.SameStatus(s) {
		return inv, nil
	}
	obj := inv.Obj.DeepCopy()
	obj.Object["status"] = s.Map()
	written, err := b.invitations.Namespace(obj.GetNamespace()).UpdateStatus(ctx, obj, metav1.UpdateOptions{})
	if err != nil {
		return inv, err
	}
	if outcome && startPhase != s.Phase {
		b.event(written, corev1.EventTypeNormal, s.Conditions[0].Reason, s.Conditions[0].Message)
	}
	return usher.ReadInvitation(written), nil
}

// event records an events.k8s.io/v1 Event as src/runtime/events.ts does, without waiting for it.
func (b *bound) event(u *unstructured.Unstructured, typ, reason, note string) {
	suffix := make([]byte, 2)
	_, _ = rand.Read(suffix)
	ev := &eventsv1.Event{
		ObjectMeta:          metav1.ObjectMeta{Name: u.GetName() + "." + strconv.FormatInt(time.Now().UnixMilli(), 16) + hex.EncodeToString(suffix), Namespace: u.GetNamespace()},
		EventTime:           metav1.NowMicro(),
		ReportingController: "usher.dev/usher-bound",
		ReportingInstance:   b.instance,
		Action:              reason,
		Reason:              reason,
		Type:                typ,
		Note:                note,
		Regarding: corev1.ObjectReference{
			APIVersion: u.GetAPIVersion(), Kind: u.GetKind(), Name: u.GetName(), Namespace: u.GetNamespace(),
			UID: u.GetUID(), ResourceVersion: u.GetResourceVersion(),
		},
	}
	b.events.Add(1)
	go func() {
		defer b.events.Done()
		if _, err := b.kube.EventsV1().Events(ev.Namespace).Create(context.Background(), ev, metav1.CreateOptions{}); err != nil {
			usher.Say("could not record event", "level", 40, "reason", reason, "error", err.Error())
		}
	}()
}

func main() {
	kubeconfig := flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig file")
	namespace := flag.String("namespace", usher.Env("USHER_NAMESPACE", "usher-system"), "Usher's namespace (the invitation records)")
	baseURL := flag.String("base-url", usher.Env("USHER_BASE_URL", "https://usher.bench.example"), "usher.baseUrl")
	smtpAddr := flag.String("smtp", usher.Env("USHER_SMTP", "127.0.0.1:25"), "SMTP host:port (plain, no TLS)")
	from := flag.String("from", usher.Env("USHER_FROM", "Usher bench <usher@bench.example>"), "From header")
	workers := flag.Int("workers", 4, "invitations delivered at once")
	poolSize := flag.Int("smtp-connections", 5, "SMTP connections")
	flag.Parse()

	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kubeconfig:", err)
		os.Exit(1)
	}
	cfg.QPS = -1 // as ctrl.GetConfig() leaves the peer's: no client-side rate limit
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dynamic client:", err)
		os.Exit(1)
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		os.Exit(1)
	}
	b := &bound{
		invitations: dyn.Resource(usher.InvitationGVR),
		kube:        kube,
		mail:        usher.NewMailPool(*smtpAddr, usher.EnvelopeFrom(*from), *poolSize),
		from:        *from,
		namespace:   *namespace,
		baseURL:     strings.TrimRight(*baseURL, "/"),
		instance:    usher.Env("POD_NAME", "usher-bound"),
	}
	usher.ReportMemoryOnSignal()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	// The invitations as they come (the Node limit's queue in bench/throughput.ts, a channel here).
	todo := make(chan *unstructured.Unstructured, 1<<16)
	go func() {
		defer close(todo)
		in := bufio.NewScanner(os.Stdin)
		in.Buffer(make([]byte, 0, 64<<10), 16<<20)
		for in.Scan() {
			u := &unstructured.Unstructured{}
			if err := json.Unmarshal(in.Bytes(), &u.Object); err != nil {
				usher.Say("not an invitation", "level", 50, "error", err.Error())
				continue
			}
			todo <- u
		}
	}()
	usher.Say("controller running", "workers", *workers, "smtpConnections", *poolSize)
	var wg sync.WaitGroup
	for i := 0; i < *workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for u := range todo {
				if err := b.deliver(ctx, u); err != nil {
					usher.Say("delivery failed", "level", 50, "invitation", u.GetNamespace()+"/"+u.GetName(), "error", err.Error())
				}
			}
		}()
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); b.events.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-ctx.Done():
	}
}
