// Usher's peer on controller-runtime, for the benchmark only (bench/peer.ts).
//
// A minimal Go operator doing what Usher does for a NEW UserInvitation, in
// Usher's order and with Usher's bodies (src/controller/reconciler.ts,
// src/invitation/decide.ts, record.ts, token.ts; the bodies are in package
// usher, shared with the bound in ./bound):
//
//  1. the usher.dev/membership finalizer on the invitation,
//  2. the record Secret in Usher's namespace (secretFromRecord: name, type,
//     labels, record.json with the same keys in the same order),
//     created with the first mail attempt already marked,
//  3. the status with the link (phase Pending, reason Sending),
//  4. the SMTP send, the record marked sent,
//  5. the status Sent, and one Event for the outcome (reconciler.ts's recordOutcome).
//
// That sequence is reconcile() below, and ./bound's deliver() issues the same
// writes without informers or a queue: when Usher's sequence changes
// (src/controller/reconciler.ts: act, sendMail, writeStatusIfChanged), change
// both.
//
// Status is written only when it differs (as JSON, key order aside) from the
// stored one, and conditions keep their lastTransitionTime while their status
// holds, so a second reconcile (or a restart) writes nothing, and the status it
// writes reads as Usher's for the same input. What it leaves out of Usher's
// job: validation (forbidden/invalid → Failed), Users and acceptance, expiry,
// reissue, the link Secret disclosure, the MailRetrying/MailRejected statuses,
// the acceptance page and metrics. A failed send is recorded on the record and
// retried with the work queue's backoff.
//
// controller-runtime v0.24.1 on client-go v0.36.3 (the control plane's
// Kubernetes is v1.36.3); four workers, leader election, the cache for the
// invitations, Usher's record Secrets (its namespace, its label selector, an
// index by invitation uid) and the namespaces (the client reads the
// unstructured invitations from the cache too, which controller-runtime does
// not do by default); the rest config as ctrl.GetConfig() leaves it (v0.24.1
// sets QPS to -1: no client-side rate limit, the API server's priority and
// fairness only). SMTP through a pool of five connections (net/smtp). On
// SIGUSR1 it logs its heap after a full GC (a line "memory").
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"usher.dev/bench/peer-go/usher"
)

// uidIndex: the cache index of the record Secrets by their invitation's uid.
const uidIndex = "usherInvitationUID"

// ---- the reconciler ----

type reconciler struct {
	client    client.Client
	recorder  events.EventRecorder
	mail      *usher.MailPool
	from      string
	namespace string
	baseURL   string
	log       logr.Logger
	// logReconciles: a line "reconciled" after each reconcile (the bench counts them after a restart, as it does Usher's debug lines).
	logReconciles bool
}

func (r *reconciler) records(ctx context.Context, uid string) ([]usher.Record, error) {
	var list corev1.SecretList
	if err := r.client.List(ctx, &list, client.InNamespace(r.namespace), client.MatchingFields{uidIndex: uid}); err != nil {
		return nil, err
	}
	out := []usher.Record{}
	for i := range list.Items {
		if rec, ok := usher.RecordFromSecret(&list.Items[i]); ok {
			out = append(out, rec)
		}
	}
	return out, nil
}

// writeStatusIfChanged writes the status when it differs; for the reconcile's outcome, it records one Event
// when the phase differs from the one the reconcile started from (reconciler.ts's recordOutcome).
func (r *reconciler) writeStatusIfChanged(ctx context.Context, inv usher.Invitation, s usher.Status, outcome bool, startPhase string) (*unstructured.Unstructured, error) {
	if inv.SameStatus(s) {
		return inv.Obj, nil
	}
	obj := inv.Obj.DeepCopy()
	obj.Object["status"] = s.Map()
	if err := r.client.Status().Update(ctx, obj); err != nil {
		return nil, err
	}
	if outcome && startPhase != s.Phase {
		// The outcome's Event: the Ready condition's reason and message.
		r.recorder.Eventf(obj, nil, corev1.EventTypeNormal, s.Conditions[0].Reason, s.Conditions[0].Reason, "%s", s.Conditions[0].Message)
	}
	return obj, nil
}

func (r *reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	res, err := r.reconcile(ctx, req)
	if r.logReconciles {
		usher.Say("reconciled", "invitation", req.String(), "ok", err == nil)
	}
	return res, err
}

func (r *reconciler) reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	u := usher.NewInvitation()
	if err := r.client.Get(ctx, req.NamespacedName, u); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	uid := string(u.GetUID())
	records, err := r.records(ctx, uid)
	if err != nil {
		return reconcile.Result{}, err
	}
	if u.GetDeletionTimestamp() != nil {
		// Deleted: its records, then the finalizer (no Users here, so no membership to take off).
		if !hasFinalizer(u) {
			return reconcile.Result{}, nil
		}
		for _, rec := range records {
			s := usher.SecretFromRecord(rec)
			if err := r.client.Delete(ctx, s); client.IgnoreNotFound(err) != nil {
				return reconcile.Result{}, err
			}
		}
		u.SetFinalizers(without(u.GetFinalizers(), usher.MembershipFinalizer))
		return reconcile.Result{}, client.IgnoreNotFound(r.client.Update(ctx, u))
	}
	// What decide.ts's forbidden() checks first: the namespace's tenant (only the Tenant scope here).
	var ns corev1.Namespace
	if err := r.client.Get(ctx, types.NamespacedName{Name: req.Namespace}, &ns); err != nil {
		return reconcile.Result{}, err
	}
	inv := usher.ReadInvitation(u)
	if inv.Scope != "" && inv.Scope != "Tenant" || ns.Labels[usher.TenantLabel] != inv.Tenant {
		r.log.Info("not handled by the peer (Usher would refuse it or handle the instance scope)", "invitation", req.String())
		return reconcile.Result{}, nil
	}
	now := time.Now()
	startPhase := inv.Prev.Phase
	fresh := false // a record this reconcile created, its first attempt marked
	link, selector := usher.VerifiedLink(inv.Prev.Link, records, r.baseURL)
	var cur *usher.Record
	for i := range records {
		if (link != "" && records[i].Selector == selector) || (link == "" && records[i].Issuance == inv.Prev.Issuance) {
			cur = &records[i]
		}
	}
	if cur != nil && link == "" && (cur.Mail == nil || (cur.Mail.SentAt == "" && !cur.Mail.FailedPermanently)) {
		cur = nil // linkLost: the link is gone while mail is still to be sent; a new token replaces it
	}
	if cur != nil && cur.UsedAt != "" {
		return reconcile.Result{}, nil // accepted: not the peer's job
	}

	if cur == nil {
		// newToken: the finalizer first (decide.ts's withFinalizer), then the record, then the status with the link.
		if !hasFinalizer(u) {
			u.SetFinalizers(append(u.GetFinalizers(), usher.MembershipFinalizer))
			if err := r.client.Update(ctx, u); err != nil {
				return reconcile.Result{}, err
			}
			inv.Obj = u
		}
		issuance := inv.Prev.Issuance
		for _, rec := range records {
			if rec.Issuance > issuance {
				issuance = rec.Issuance
			}
			if err := r.client.Delete(ctx, usher.SecretFromRecord(rec)); client.IgnoreNotFound(err) != nil {
				return reconcile.Result{}, err
			}
		}
		issuance++
		reason := "Issued"
		if len(records) > 0 || inv.Prev.Issuance > 0 {
			reason = "Reissued"
		}
		tok := usher.IssueToken()
		rec := usher.NewRecord(inv, r.namespace, issuance, tok, now)
		rec.Mail = &usher.MailState{Attempts: 1, AttemptStartedAt: usher.IsoMillis(time.Now())}
		secret := usher.SecretFromRecord(rec)
		if err := r.client.Create(ctx, secret); err != nil {
			// AlreadyExists: a stale cache (our own earlier write); requeue and read again.
			return reconcile.Result{}, err
		}
		rec.ResourceVersion = secret.ResourceVersion
		fresh = true
		r.log.Info("issued invitation", "reason", reason, "invitation", req.String(), "issuance", issuance, "expiresAt", rec.ExpiresAt)
		link = usher.LinkFor(r.baseURL, tok.Selector, tok.Verifier)
		s := inv.Held(rec, link, time.Now())
		written, err := r.writeStatusIfChanged(ctx, inv, s, false, "")
		if err != nil {
			return reconcile.Result{}, err
		}
		inv = usher.ReadInvitation(written)
		cur = &rec
	}
	if cur.Mail != nil && cur.Mail.FailedPermanently {
		return reconcile.Result{}, nil // mailRejected: not written by the peer
	}
	if cur.Mail == nil || cur.Mail.SentAt == "" {
		if cur.Mail != nil && cur.Mail.NextAttemptAt != "" {
			if at, err := time.Parse(time.RFC3339, cur.Mail.NextAttemptAt); err == nil && time.Until(at) > 0 {
				return reconcile.Result{RequeueAfter: time.Until(at)}, nil
			}
		}
		// sendMail: the attempt on the record (a fresh record has it already), the send, the outcome on the record.
		attempts := 1
		started := *cur
		if !fresh {
			if cur.Mail != nil {
				attempts = cur.Mail.Attempts + 1
			}
			ms := usher.MailState{Attempts: attempts, AttemptStartedAt: usher.IsoMillis(time.Now())}
			if cur.Mail != nil {
				ms.SentAt, ms.LastError, ms.NextAttemptAt, ms.FailedAt = cur.Mail.SentAt, cur.Mail.LastError, cur.Mail.NextAttemptAt, cur.Mail.FailedAt
			}
			started.Mail = &ms
			s := usher.SecretFromRecord(started)
			if err := r.client.Update(ctx, s); err != nil {
				return reconcile.Result{}, err
			}
			started.ResourceVersion = s.ResourceVersion
		}
		sendErr := r.mail.Send(inv.Email, usher.Message(r.from, inv.Email, link, cur.ExpiresAt))
		r.log.Info("invitation mail attempt", "invitation", req.String(), "attempts", attempts, "ok", sendErr == nil)
		done := started
		if sendErr == nil {
			done.Mail = &usher.MailState{Attempts: attempts, SentAt: usher.IsoSeconds(time.Now())}
		} else {
			failedAt := time.Now()
			next := failedAt.Add(30 * time.Second)
			done.Mail = &usher.MailState{Attempts: attempts, LastError: sendErr.Error(), NextAttemptAt: usher.IsoMillis(next), FailedAt: usher.IsoMillis(failedAt)}
			r.recorder.Eventf(u, nil, corev1.EventTypeWarning, "MailRetrying", "MailRetrying", "Sending the invitation failed (attempt %d), retrying in 30s: %s", attempts, sendErr.Error())
		}
		if err := r.client.Update(ctx, usher.SecretFromRecord(done)); err != nil {
			return reconcile.Result{}, err
		}
		if sendErr != nil {
			return reconcile.Result{RequeueAfter: 30 * time.Second}, nil
		}
		cur = &done
	}
	s := inv.Held(*cur, link, time.Now())
	if _, err := r.writeStatusIfChanged(ctx, inv, s, true, startPhase); err != nil {
		return reconcile.Result{}, err
	}
	exp, _ := time.Parse(time.RFC3339, cur.ExpiresAt)
	return reconcile.Result{RequeueAfter: time.Until(exp)}, nil
}

func hasFinalizer(u *unstructured.Unstructured) bool {
	for _, f := range u.GetFinalizers() {
		if f == usher.MembershipFinalizer {
			return true
		}
	}
	return false
}

func without(list []string, x string) []string {
	out := []string{}
	for _, s := range list {
		if s != x {
			out = append(out, s)
		}
	}
	return out
}

func main() {
	namespace := flag.String("namespace", usher.Env("USHER_NAMESPACE", "usher-system"), "Usher's namespace (the invitation records)")
	baseURL := flag.String("base-url", usher.Env("USHER_BASE_URL", "https://usher.bench.example"), "usher.baseUrl")
	smtpAddr := flag.String("smtp", usher.Env("USHER_SMTP", "127.0.0.1:25"), "SMTP host:port (plain, no TLS)")
	from := flag.String("from", usher.Env("USHER_FROM", "Usher bench <usher@bench.example>"), "From header")
	workers := flag.Int("workers", 4, "MaxConcurrentReconciles")
	poolSize := flag.Int("smtp-connections", 5, "SMTP connections")
	leaderElection := flag.Bool("leader-elect", true, "leader election (a Lease)")
	leaseNamespace := flag.String("lease-namespace", usher.Env("POD_NAMESPACE", "default"), "the Lease's namespace")
	verbose := flag.Bool("v", false, "controller-runtime's own log lines")
	logReconciles := flag.Bool("log-reconciles", false, `a line "reconciled" after each reconcile`)
	flag.Parse() // also controller-runtime's --kubeconfig (or KUBECONFIG)

	level := 0
	if !*verbose {
		level = -1
	}
	log := funcr.NewJSON(func(obj string) { fmt.Println(obj) }, funcr.Options{Verbosity: level})
	if !*verbose {
		log = logr.Discard()
	}
	ctrl.SetLogger(log)

	cfg := ctrl.GetConfigOrDie()
	usher.Say("rest config", "qps", cfg.QPS, "burst", cfg.Burst)
	recordSelector := labels.SelectorFromSet(labels.Set{usher.ManagedByLabel: "usher", usher.ComponentLabel: usher.RecordComponent})
	mgr, err := ctrl.NewManager(cfg, manager.Options{
		LeaderElection:                *leaderElection,
		LeaderElectionID:              "usher-peer-go",
		LeaderElectionNamespace:       *leaseNamespace,
		LeaderElectionReleaseOnCancel: true,
		Metrics:                       metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress:        "0",
		// The invitations are unstructured (no generated Go types): without this the client reads them from the API server, not the cache.
		Client: client.Options{Cache: &client.CacheOptions{Unstructured: true}},
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}: {Namespaces: map[string]cache.Config{*namespace: {}}, Label: recordSelector},
		}},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "manager:", err)
		os.Exit(1)
	}
	r := &reconciler{
		client:    mgr.GetClient(),
		recorder:  mgr.GetEventRecorder("usher.dev/usher-peer-go"),
		mail:      usher.NewMailPool(*smtpAddr, usher.EnvelopeFrom(*from), *poolSize),
		from:      *from,
		namespace: *namespace,
		baseURL:   strings.TrimRight(*baseURL, "/"),
		log:       funcr.NewJSON(func(obj string) { fmt.Println(obj) }, funcr.Options{}),

		logReconciles: *logReconciles,
	}
	// A record's change reconciles its invitation (payload names it), as Usher's record informer does.
	toInvitation := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
		s, ok := o.(*corev1.Secret)
		if !ok {
			return nil
		}
		rec, ok := usher.RecordFromSecret(s)
		if !ok {
			return nil
		}
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: rec.InvitationNamespace, Name: rec.InvitationName}}}
	})
	// A record's invitation uid as a cache index (as a controller-runtime operator would look a child up),
	// so a reconcile finds its records without scanning every record in the namespace.
	err = mgr.GetFieldIndexer().IndexField(context.Background(), &corev1.Secret{}, uidIndex, func(o client.Object) []string {
		if uid := o.GetLabels()[usher.UIDLabel]; uid != "" {
			return []string{uid}
		}
		return nil
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "index:", err)
		os.Exit(1)
	}
	err = ctrl.NewControllerManagedBy(mgr).
		For(usher.NewInvitation()).
		Watches(&corev1.Secret{}, toInvitation).
		Named("userinvitation").
		WithOptions(controller.Options{MaxConcurrentReconciles: *workers}).
		Complete(r)
	if err != nil {
		fmt.Fprintln(os.Stderr, "controller:", err)
		os.Exit(1)
	}
	// The namespaces' informer too (the tenant label), started with the others.
	if _, err := mgr.GetCache().GetInformer(context.Background(), &corev1.Namespace{}); err != nil {
		fmt.Fprintln(os.Stderr, "namespace informer:", err)
		os.Exit(1)
	}
	// Once leading and synced: the line the bench waits for ("controller running", as Usher logs it).
	var once sync.Once
	err = mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		if !mgr.GetCache().WaitForCacheSync(ctx) {
			return errors.New("caches did not sync")
		}
		once.Do(func() { usher.Say("controller running", "workers", *workers, "smtpConnections", *poolSize) })
		<-ctx.Done()
		return nil
	}))
	if err != nil {
		fmt.Fprintln(os.Stderr, "runnable:", err)
		os.Exit(1)
	}
	usher.ReportMemoryOnSignal()
	ctx := ctrl.SetupSignalHandler()
	if err := mgr.Start(ctx); err != nil && !apierrors.IsNotFound(err) {
		fmt.Fprintln(os.Stderr, "manager stopped:", err)
		os.Exit(1)
	}
}
