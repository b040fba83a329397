// Usher's peer on controller-runtime, for the benchmark only (bench/peer.ts).
//
// A minimal Go operator doing what Usher does for a NEW UserInvitation, in
// Usher's order and with Usher's bodies (src/controller/reconciler.ts,
// src/invitation/decide.ts, record.ts, token.ts):
//
//  1. the usher.dev/membership finalizer on the invitation,
//  2. the record Secret in Usher's namespace (secretFromRecord: name, type,
//     labels, record.json with the same keys in the same order),
//     an Event "Issued",
//  3. the status with the link (phase Pending, reason Sending), an Event for the phase,
//  4. the mail attempt marked on the record, the SMTP send, the record marked sent,
//  5. the status Sent, an Event for the phase.
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
// invitations, Usher's record Secrets (its namespace, its label selector) and
// the namespaces (the client reads the unstructured invitations from the cache
// too, which controller-runtime does not do by default); the rest config as ctrl.GetConfig() leaves it (v0.24.1 sets
// QPS to -1: no client-side rate limit, the API server's priority and fairness
// only). SMTP through a pool of five connections (net/smtp).
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/smtp"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
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
)

const (
	membershipFinalizer = "usher.dev/membership"
	recordType          = "usher.dev/invitation-record"
	managedByLabel      = "app.kubernetes.io/managed-by"
	componentLabel      = "usher.dev/component"
	recordComponent     = "invitation-record"
	uidLabel            = "usher.dev/invitation-uid"
	selectorLabel       = "usher.dev/selector"
	tenantLabel         = "usher.dev/tenant"
	dataKey             = "record.json"
	expireAfter         = 7 * 24 * time.Hour // usher.invitations.expireAfter's default, P7D
)

var invitationGVK = schema.GroupVersionKind{Group: "usher.dev", Version: "v1alpha1", Kind: "UserInvitation"}

func newInvitation() *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(invitationGVK)
	return u
}

// ---- the record (src/invitation/record.ts), its keys in Usher's order ----

type mailState struct {
	Attempts          int    `json:"attempts"`
	AttemptStartedAt  string `json:"attemptStartedAt,omitempty"`
	SentAt            string `json:"sentAt,omitempty"`
	LastError         string `json:"lastError,omitempty"`
	FailedPermanently bool   `json:"failedPermanently,omitempty"`
	NextAttemptAt     string `json:"nextAttemptAt,omitempty"`
}

type payload struct {
	InvitationNamespace string     `json:"invitationNamespace"`
	InvitationName      string     `json:"invitationName"`
	InvitationUID       string     `json:"invitationUid"`
	Selector            string     `json:"selector"`
	VerifierHash        string     `json:"verifierHash"`
	Email               string     `json:"email"`
	Issuance            int        `json:"issuance"`
	IssuedAt            string     `json:"issuedAt"`
	ExpiresAt           string     `json:"expiresAt"`
	UsedAt              string     `json:"usedAt,omitempty"`
	User                string     `json:"user,omitempty"`
	Mail                *mailState `json:"mail,omitempty"`
	AccountExists       *bool      `json:"accountExists,omitempty"`
}

type record struct {
	Name, Namespace, ResourceVersion string
	payload
}

// jsonNoEscape is JSON.stringify's output for these values (no \u003c for <, >, &).
func jsonNoEscape(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

func secretFromRecord(r record) *corev1.Secret {
	s := &corev1.Secret{}
	s.Name = r.Name
	s.Namespace = r.Namespace
	s.ResourceVersion = r.ResourceVersion
	s.Type = recordType
	s.Labels = map[string]string{
		managedByLabel: "usher",
		componentLabel: recordComponent,
		uidLabel:       r.InvitationUID,
		selectorLabel:  r.Selector,
	}
	s.Data = map[string][]byte{dataKey: jsonNoEscape(r.payload)}
	return s
}

func recordFromSecret(s *corev1.Secret) (record, bool) {
	if string(s.Type) != recordType || s.Labels[componentLabel] != recordComponent {
		return record{}, false
	}
	var p payload
	if err := json.Unmarshal(s.Data[dataKey], &p); err != nil || p.InvitationNamespace == "" || p.VerifierHash == "" {
		return record{}, false
	}
	return record{Name: s.Name, Namespace: s.Namespace, ResourceVersion: s.ResourceVersion, payload: p}, true
}

func recordName(uid string, issuance int) string {
	return fmt.Sprintf("usher-invitation-%s-%d", uid, issuance)
}

// ---- tokens (src/invitation/token.ts) ----

type token struct{ selector, verifier, verifierHash string }

func hashVerifier(v string) string { h := sha256.Sum256([]byte(v)); return hex.EncodeToString(h[:]) }

func issueToken() token {
	sel := make([]byte, 16)
	ver := make([]byte, 32)
	if _, err := rand.Read(sel); err != nil {
		panic(err)
	}
	if _, err := rand.Read(ver); err != nil {
		panic(err)
	}
	v := base64.RawURLEncoding.EncodeToString(ver)
	return token{selector: hex.EncodeToString(sel), verifier: v, verifierHash: hashVerifier(v)}
}

var tokenPattern = regexp.MustCompile(`^([0-9a-f]{32})\.([A-Za-z0-9_-]{43})$`)

func linkFor(baseURL, selector, verifier string) string {
	return baseURL + "/accept/" + selector + "." + verifier
}

// verifiedLink is reconciler.ts's verifiedLink: the disclosed link, when it is ours and its token verifies against a record.
func verifiedLink(disclosed string, records []record, baseURL string) (string, string) {
	if disclosed == "" {
		return "", ""
	}
	m := tokenPattern.FindStringSubmatch(disclosed[strings.LastIndex(disclosed, "/")+1:])
	if m == nil || disclosed != linkFor(baseURL, m[1], m[2]) {
		return "", ""
	}
	for _, r := range records {
		if r.Selector == m[1] && hashVerifier(m[2]) == r.VerifierHash {
			return disclosed, m[1]
		}
	}
	return "", ""
}

// ---- time as Usher writes it (src/invitation/time.ts, Date.toISOString) ----

func isoSeconds(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }
func isoMillis(t time.Time) string  { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// ---- status and conditions (src/invitation/conditions.ts) ----

type condition struct {
	Type               string `json:"type"`
	Status             string `json:"status"`
	ObservedGeneration *int64 `json:"observedGeneration,omitempty"`
	LastTransitionTime string `json:"lastTransitionTime"`
	Reason             string `json:"reason"`
	Message            string `json:"message"`
}

type status struct {
	Tenant               string      `json:"tenant"`
	ObservedGeneration   *int64      `json:"observedGeneration,omitempty"`
	LastHandledReissueAt string      `json:"lastHandledReissueAt,omitempty"`
	Phase                string      `json:"phase"`
	Link                 string      `json:"link,omitempty"`
	Issuance             int         `json:"issuance,omitempty"`
	IssuedAt             string      `json:"issuedAt,omitempty"`
	ExpiresAt            string      `json:"expiresAt,omitempty"`
	SentAt               string      `json:"sentAt,omitempty"`
	Conditions           []condition `json:"conditions"`
}

type desired struct{ typ, status, reason, message string }

func readiness(state, reason, message string) []desired {
	pick := func(cond bool, a, b string) string {
		if cond {
			return a
		}
		return b
	}
	return []desired{
		{"Ready", pick(state == "ready", "True", "False"), reason, message},
		{"Reconciling", pick(state == "progressing", "True", "False"), pick(state == "progressing", reason, "Settled"), pick(state == "progressing", message, "Nothing in progress.")},
		{"Stalled", pick(state == "stalled", "True", "False"), pick(state == "stalled", reason, "NotStalled"), pick(state == "stalled", message, "No intervention needed.")},
	}
}

func mergeConditions(existing []condition, want []desired, generation *int64, now time.Time) []condition {
	out := make([]condition, 0, len(want))
	for _, w := range want {
		ltt := isoSeconds(now)
		for _, had := range existing {
			if had.Type == w.typ && had.Status == w.status {
				ltt = had.LastTransitionTime
			}
		}
		out = append(out, condition{Type: w.typ, Status: w.status, ObservedGeneration: generation, LastTransitionTime: ltt, Reason: w.reason, Message: w.message})
	}
	return out
}

// canonical is reconciler.ts's sameStatus: JSON with sorted keys (encoding/json sorts map keys).
func canonical(v any) string {
	var generic any
	if err := json.Unmarshal(jsonNoEscape(v), &generic); err != nil {
		panic(err)
	}
	return string(jsonNoEscape(generic))
}

// ---- the invitation, read from unstructured ----

type invitation struct {
	obj        *unstructured.Unstructured
	email      string
	tenant     string
	scope      string
	generation *int64
	prev       status
	prevRaw    map[string]any
}

func readInvitation(u *unstructured.Unstructured) invitation {
	inv := invitation{obj: u}
	email, _, _ := unstructured.NestedString(u.Object, "spec", "email")
	inv.email = normalizeEmail(email)
	inv.tenant, _, _ = unstructured.NestedString(u.Object, "spec", "tenant")
	inv.scope, _, _ = unstructured.NestedString(u.Object, "spec", "scope")
	if g := u.GetGeneration(); g != 0 {
		inv.generation = &g
	}
	raw, _, _ := unstructured.NestedMap(u.Object, "status")
	inv.prevRaw = raw
	if raw != nil {
		b, _ := json.Marshal(raw)
		_ = json.Unmarshal(b, &inv.prev)
	}
	return inv
}

// normalizeEmail for ASCII addresses (email.ts also maps internationalised domains to ASCII; the bench's addresses are ASCII).
func normalizeEmail(e string) string {
	e = strings.TrimSpace(e)
	lower := func(s string) string {
		b := []byte(s)
		for i, c := range b {
			if c >= 'A' && c <= 'Z' {
				b[i] = c + 32
			}
		}
		return string(b)
	}
	return lower(e)
}

func (inv invitation) base() status {
	s := status{Tenant: inv.tenant, ObservedGeneration: inv.generation, LastHandledReissueAt: inv.prev.LastHandledReissueAt}
	if inv.scope == "Instance" {
		s.Tenant = "*"
	}
	return s
}

// held is decide.ts's plan once a token is held: Pending/Sending until the record says sent, then Sent.
func (inv invitation) held(cur record, link string, now time.Time) (status, bool) {
	s := inv.base()
	s.Link, s.Issuance, s.IssuedAt, s.ExpiresAt = link, cur.Issuance, cur.IssuedAt, cur.ExpiresAt
	if cur.Mail != nil && cur.Mail.SentAt != "" {
		s.Phase, s.SentAt = "Sent", cur.Mail.SentAt
		want := append(readiness("ready", "Sent", fmt.Sprintf("Invitation mailed to %s at %s; it expires at %s.", inv.email, cur.Mail.SentAt, cur.ExpiresAt)),
			desired{"MailDelivered", "True", "Sent", fmt.Sprintf("Mailed to %s at %s.", inv.email, cur.Mail.SentAt)})
		s.Conditions = mergeConditions(inv.prev.Conditions, want, inv.generation, now)
		return s, false
	}
	s.Phase = "Pending"
	want := append(readiness("progressing", "Sending", fmt.Sprintf("Sending the invitation to %s.", inv.email)),
		desired{"MailDelivered", "Unknown", "Sending", fmt.Sprintf("Sending to %s.", inv.email)})
	s.Conditions = mergeConditions(inv.prev.Conditions, want, inv.generation, now)
	return s, true
}

// ---- SMTP: a pool of five connections ----

type mailPool struct {
	addr, from string
	slots      chan *smtp.Client
}

func newMailPool(addr, from string, size int) *mailPool {
	p := &mailPool{addr: addr, from: from, slots: make(chan *smtp.Client, size)}
	for i := 0; i < size; i++ {
		p.slots <- nil
	}
	return p
}

func (p *mailPool) send(to string, msg []byte) error {
	c := <-p.slots
	var err error
	for try := 0; try < 2; try++ {
		if c == nil {
			if c, err = smtp.Dial(p.addr); err != nil {
				c = nil
				break
			}
			if err = c.Hello("usher-peer-go"); err != nil {
				_ = c.Close()
				c = nil
				break
			}
		}
		if err = sendOn(c, p.from, to, msg); err == nil {
			break
		}
		// A connection the server closed (idle timeout): dial again once.
		_ = c.Close()
		c = nil
	}
	p.slots <- c
	return err
}

func sendOn(c *smtp.Client, from, to string, msg []byte) error {
	if err := c.Mail(from); err != nil {
		return err
	}
	if err := c.Rcpt(to); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	return w.Close()
}

func message(fromHeader, to, link, expiresAt string) []byte {
	boundary := "usher-peer-" + hex.EncodeToString([]byte(to))[:16]
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: You are invited\r\nDate: %s\r\nMIME-Version: 1.0\r\n", fromHeader, to, time.Now().Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Content-Type: multipart/alternative; boundary=%q\r\n\r\n", boundary)
	fmt.Fprintf(&b, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nYou are invited. Accept the invitation here (until %s):\r\n%s\r\n\r\n", boundary, expiresAt, link)
	fmt.Fprintf(&b, "--%s\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>You are invited.</p><p><a href=\"%s\">Accept the invitation</a> (until %s).</p>\r\n\r\n--%s--\r\n", boundary, link, expiresAt, boundary)
	return []byte(b.String())
}

// ---- the reconciler ----

type reconciler struct {
	client    client.Client
	recorder  events.EventRecorder
	mail      *mailPool
	from      string
	namespace string
	baseURL   string
	log       logr.Logger
	// logReconciles: a line "reconciled" after each reconcile (the bench counts them after a restart, as it does Usher's debug lines).
	logReconciles bool
}

func (r *reconciler) records(ctx context.Context, uid string) ([]record, error) {
	var list corev1.SecretList
	if err := r.client.List(ctx, &list, client.InNamespace(r.namespace), client.MatchingLabels{uidLabel: uid}); err != nil {
		return nil, err
	}
	out := []record{}
	for i := range list.Items {
		if rec, ok := recordFromSecret(&list.Items[i]); ok {
			out = append(out, rec)
		}
	}
	return out, nil
}

func (r *reconciler) writeStatusIfChanged(ctx context.Context, inv invitation, s status) (*unstructured.Unstructured, error) {
	if inv.prevRaw != nil && canonical(inv.prevRaw) == canonical(s) {
		return inv.obj, nil
	}
	var m map[string]any
	if err := json.Unmarshal(jsonNoEscape(s), &m); err != nil {
		return nil, err
	}
	obj := inv.obj.DeepCopy()
	obj.Object["status"] = m
	if err := r.client.Status().Update(ctx, obj); err != nil {
		return nil, err
	}
	if inv.prev.Phase != s.Phase {
		// writeStatusIfChanged's Event: the Ready condition's reason and message.
		r.recorder.Eventf(obj, nil, corev1.EventTypeNormal, s.Conditions[0].Reason, s.Conditions[0].Reason, "%s", s.Conditions[0].Message)
	}
	return obj, nil
}

func (r *reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	res, err := r.reconcile(ctx, req)
	if r.logReconciles {
		say("reconciled", "invitation", req.String(), "ok", err == nil)
	}
	return res, err
}

func (r *reconciler) reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	u := newInvitation()
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
			s := secretFromRecord(rec)
			if err := r.client.Delete(ctx, s); client.IgnoreNotFound(err) != nil {
				return reconcile.Result{}, err
			}
		}
		u.SetFinalizers(without(u.GetFinalizers(), membershipFinalizer))
		return reconcile.Result{}, client.IgnoreNotFound(r.client.Update(ctx, u))
	}
	// What decide.ts's forbidden() checks first: the namespace's tenant (only the Tenant scope here).
	var ns corev1.Namespace
	if err := r.client.Get(ctx, types.NamespacedName{Name: req.Namespace}, &ns); err != nil {
		return reconcile.Result{}, err
	}
	inv := readInvitation(u)
	if inv.scope != "" && inv.scope != "Tenant" || ns.Labels[tenantLabel] != inv.tenant {
		r.log.Info("not handled by the peer (Usher would refuse it or handle the instance scope)", "invitation", req.String())
		return reconcile.Result{}, nil
	}
	now := time.Now()
	link, selector := verifiedLink(inv.prev.Link, records, r.baseURL)
	var cur *record
	for i := range records {
		if (link != "" && records[i].Selector == selector) || (link == "" && records[i].Issuance == inv.prev.Issuance) {
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
			u.SetFinalizers(append(u.GetFinalizers(), membershipFinalizer))
			if err := r.client.Update(ctx, u); err != nil {
				return reconcile.Result{}, err
			}
			inv.obj = u
		}
		issuance := inv.prev.Issuance
		for _, rec := range records {
			if rec.Issuance > issuance {
				issuance = rec.Issuance
			}
			if err := r.client.Delete(ctx, secretFromRecord(rec)); client.IgnoreNotFound(err) != nil {
				return reconcile.Result{}, err
			}
		}
		issuance++
		reason := "Issued"
		if len(records) > 0 || inv.prev.Issuance > 0 {
			reason = "Reissued"
		}
		tok := issueToken()
		rec := record{Name: recordName(uid, issuance), Namespace: r.namespace, payload: payload{
			InvitationNamespace: req.Namespace, InvitationName: req.Name, InvitationUID: uid,
			Selector: tok.selector, VerifierHash: tok.verifierHash, Email: inv.email, Issuance: issuance,
			IssuedAt: isoSeconds(now), ExpiresAt: isoSeconds(now.Add(expireAfter)),
		}}
		secret := secretFromRecord(rec)
		if err := r.client.Create(ctx, secret); err != nil {
			// AlreadyExists: a stale cache (our own earlier write); requeue and read again.
			return reconcile.Result{}, err
		}
		rec.ResourceVersion = secret.ResourceVersion
		r.recorder.Eventf(u, nil, corev1.EventTypeNormal, reason, reason, "Issued invitation link #%d for %s, valid until %s.", issuance, inv.email, rec.ExpiresAt)
		r.log.Info("issued invitation", "invitation", req.String(), "issuance", issuance, "expiresAt", rec.ExpiresAt)
		link = linkFor(r.baseURL, tok.selector, tok.verifier)
		s, _ := inv.held(rec, link, time.Now())
		written, err := r.writeStatusIfChanged(ctx, inv, s)
		if err != nil {
			return reconcile.Result{}, err
		}
		inv = readInvitation(written)
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
		// sendMail: the attempt on the record, the send, the outcome on the record.
		attempts := 1
		if cur.Mail != nil {
			attempts = cur.Mail.Attempts + 1
		}
		started := *cur
		ms := mailState{Attempts: attempts, AttemptStartedAt: isoMillis(time.Now())}
		if cur.Mail != nil {
			ms.SentAt, ms.LastError, ms.NextAttemptAt = cur.Mail.SentAt, cur.Mail.LastError, cur.Mail.NextAttemptAt
		}
		started.Mail = &ms
		s := secretFromRecord(started)
		if err := r.client.Update(ctx, s); err != nil {
			return reconcile.Result{}, err
		}
		started.ResourceVersion = s.ResourceVersion
		sendErr := r.mail.send(inv.email, message(r.from, inv.email, link, cur.ExpiresAt))
		r.log.Info("invitation mail attempt", "invitation", req.String(), "attempts", attempts, "ok", sendErr == nil)
		done := started
		if sendErr == nil {
			done.Mail = &mailState{Attempts: attempts, SentAt: isoSeconds(time.Now())}
		} else {
			next := time.Now().Add(30 * time.Second)
			done.Mail = &mailState{Attempts: attempts, LastError: sendErr.Error(), NextAttemptAt: isoMillis(next)}
			r.recorder.Eventf(u, nil, corev1.EventTypeWarning, "MailRetrying", "MailRetrying", "Sending the invitation failed (attempt %d), retrying in 30s: %s", attempts, sendErr.Error())
		}
		if err := r.client.Update(ctx, secretFromRecord(done)); err != nil {
			return reconcile.Result{}, err
		}
		if sendErr != nil {
			return reconcile.Result{RequeueAfter: 30 * time.Second}, nil
		}
		cur = &done
	}
	s, _ := inv.held(*cur, link, time.Now())
	if _, err := r.writeStatusIfChanged(ctx, inv, s); err != nil {
		return reconcile.Result{}, err
	}
	exp, _ := time.Parse(time.RFC3339, cur.ExpiresAt)
	return reconcile.Result{RequeueAfter: time.Until(exp)}, nil
}

func hasFinalizer(u *unstructured.Unstructured) bool {
	for _, f := range u.GetFinalizers() {
		if f == membershipFinalizer {
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

func env(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

// say prints one JSON log line as Usher's operator does (the bench reads "msg").
func say(msg string, kv ...any) {
	m := map[string]any{"level": 30, "time": time.Now().UnixMilli(), "msg": msg}
	for i := 0; i+1 < len(kv); i += 2 {
		m[fmt.Sprint(kv[i])] = kv[i+1]
	}
	fmt.Println(string(jsonNoEscape(m)))
}

func main() {
	namespace := flag.String("namespace", env("USHER_NAMESPACE", "usher-system"), "Usher's namespace (the invitation records)")
	baseURL := flag.String("base-url", env("USHER_BASE_URL", "https://usher.bench.example"), "usher.baseUrl")
	smtpAddr := flag.String("smtp", env("USHER_SMTP", "127.0.0.1:25"), "SMTP host:port (plain, no TLS)")
	from := flag.String("from", env("USHER_FROM", "Usher bench <usher@bench.example>"), "From header")
	workers := flag.Int("workers", 4, "MaxConcurrentReconciles")
	poolSize := flag.Int("smtp-connections", 5, "SMTP connections")
	leaderElection := flag.Bool("leader-elect", true, "leader election (a Lease)")
	leaseNamespace := flag.String("lease-namespace", env("POD_NAMESPACE", "default"), "the Lease's namespace")
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
	say("rest config", "qps", cfg.QPS, "burst", cfg.Burst)
	recordSelector := labels.SelectorFromSet(labels.Set{managedByLabel: "usher", componentLabel: recordComponent})
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
	envelopeFrom := *from
	if i, j := strings.Index(*from, "<"), strings.Index(*from, ">"); i >= 0 && j > i {
		envelopeFrom = (*from)[i+1 : j]
	}
	r := &reconciler{
		client:    mgr.GetClient(),
		recorder:  mgr.GetEventRecorder("usher.dev/usher-peer-go"),
		mail:      newMailPool(*smtpAddr, envelopeFrom, *poolSize),
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
		rec, ok := recordFromSecret(s)
		if !ok {
			return nil
		}
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: rec.InvitationNamespace, Name: rec.InvitationName}}}
	})
	err = ctrl.NewControllerManagedBy(mgr).
		For(newInvitation()).
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
		once.Do(func() { say("controller running", "workers", *workers, "smtpConnections", *poolSize) })
		<-ctx.Done()
		return nil
	}))
	if err != nil {
		fmt.Fprintln(os.Stderr, "runnable:", err)
		os.Exit(1)
	}
	ctx := ctrl.SetupSignalHandler()
	if err := mgr.Start(ctx); err != nil && !apierrors.IsNotFound(err) {
		fmt.Fprintln(os.Stderr, "manager stopped:", err)
		os.Exit(1)
	}
}
