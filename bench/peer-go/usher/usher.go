// Package usher holds what the Go peer (bench/peer-go, controller-runtime) and
// the bound (bench/peer-go/bound, a plain client-go client) share: Usher's
// bodies, read off src/invitation (record.ts, token.ts, conditions.ts,
// decide.ts, time.ts), the SMTP pool of five connections, the JSON log line and
// the heap report. For the benchmark only (bench/peer.ts); Usher never imports it.
package usher

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/smtp"
	"os"
	"os/signal"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

const (
	MembershipFinalizer = "usher.dev/membership"
	RecordType          = "usher.dev/invitation-record"
	ManagedByLabel      = "app.kubernetes.io/managed-by"
	ComponentLabel      = "usher.dev/component"
	RecordComponent     = "invitation-record"
	UIDLabel            = "usher.dev/invitation-uid"
	SelectorLabel       = "usher.dev/selector"
	TenantLabel         = "usher.dev/tenant"
	DataKey             = "record.json"
	ExpireAfter         = 7 * 24 * time.Hour // usher.invitations.expireAfter's default, P7D
)

var (
	InvitationGVK = schema.GroupVersionKind{Group: "usher.dev", Version: "v1alpha1", Kind: "UserInvitation"}
	InvitationGVR = schema.GroupVersionResource{Group: "usher.dev", Version: "v1alpha1", Resource: "userinvitations"}
)

func NewInvitation() *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(InvitationGVK)
	return u
}

// ---- the record (src/invitation/record.ts), its keys in Usher's order ----

type MailState struct {
	Attempts          int    `json:"attempts"`
	AttemptStartedAt  string `json:"attemptStartedAt,omitempty"`
	SentAt            string `json:"sentAt,omitempty"`
	LastError         string `json:"lastError,omitempty"`
	FailedPermanently bool   `json:"failedPermanently,omitempty"`
	NextAttemptAt     string `json:"nextAttemptAt,omitempty"`
	FailedAt          string `json:"failedAt,omitempty"`
}

type Payload struct {
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
	Mail                *MailState `json:"mail,omitempty"`
	AccountExists       *bool      `json:"accountExists,omitempty"`
}

type Record struct {
	Name, Namespace, ResourceVersion string
	Payload
}

// JSONNoEscape is JSON.stringify's output for these values (no \u003c for <, >, &).
func JSONNoEscape(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

func SecretFromRecord(r Record) *corev1.Secret {
	s := &corev1.Secret{}
	s.Name = r.Name
	s.Namespace = r.Namespace
	s.ResourceVersion = r.ResourceVersion
	s.Type = RecordType
	s.Labels = map[string]string{
		ManagedByLabel: "usher",
		ComponentLabel: RecordComponent,
		UIDLabel:       r.InvitationUID,
		SelectorLabel:  r.Selector,
	}
	s.Data = map[string][]byte{DataKey: JSONNoEscape(r.Payload)}
	return s
}

func RecordFromSecret(s *corev1.Secret) (Record, bool) {
	if string(s.Type) != RecordType || s.Labels[ComponentLabel] != RecordComponent {
		return Record{}, false
	}
	var p Payload
	if err := json.Unmarshal(s.Data[DataKey], &p); err != nil || p.InvitationNamespace == "" || p.VerifierHash == "" {
		return Record{}, false
	}
	return Record{Name: s.Name, Namespace: s.Namespace, ResourceVersion: s.ResourceVersion, Payload: p}, true
}

func RecordName(uid string, issuance int) string {
	return fmt.Sprintf("usher-invitation-%s-%d", uid, issuance)
}

// NewRecord is the record decide.ts's issue action asks for: a fresh token's hash, issued now, expiring after ExpireAfter.
func NewRecord(inv Invitation, namespace string, issuance int, tok Token, now time.Time) Record {
	uid := string(inv.Obj.GetUID())
	return Record{Name: RecordName(uid, issuance), Namespace: namespace, Payload: Payload{
		InvitationNamespace: inv.Obj.GetNamespace(), InvitationName: inv.Obj.GetName(), InvitationUID: uid,
		Selector: tok.Selector, VerifierHash: tok.VerifierHash, Email: inv.Email, Issuance: issuance,
		IssuedAt: IsoSeconds(now), ExpiresAt: IsoSeconds(now.Add(ExpireAfter)),
	}}
}

// ---- tokens (src/invitation/token.ts) ----

type Token struct{ Selector, Verifier, VerifierHash string }

func HashVerifier(v string) string { h := sha256.Sum256([]byte(v)); return hex.EncodeToString(h[:]) }

func IssueToken() Token {
	sel := make([]byte, 16)
	ver := make([]byte, 32)
	if _, err := rand.Read(sel); err != nil {
		panic(err)
	}
	if _, err := rand.Read(ver); err != nil {
		panic(err)
	}
	v := base64.RawURLEncoding.EncodeToString(ver)
	return Token{Selector: hex.EncodeToString(sel), Verifier: v, VerifierHash: HashVerifier(v)}
}

var tokenPattern = regexp.MustCompile(`^([0-9a-f]{32})\.([A-Za-z0-9_-]{43})$`)

func LinkFor(baseURL, selector, verifier string) string {
	return baseURL + "/accept/" + selector + "." + verifier
}

// VerifiedLink is reconciler.ts's verifiedLink: the disclosed link, when it is ours and its token verifies against a record.
func VerifiedLink(disclosed string, records []Record, baseURL string) (string, string) {
	if disclosed == "" {
		return "", ""
	}
	m := tokenPattern.FindStringSubmatch(disclosed[strings.LastIndex(disclosed, "/")+1:])
	if m == nil || disclosed != LinkFor(baseURL, m[1], m[2]) {
		return "", ""
	}
	for _, r := range records {
		if r.Selector == m[1] && HashVerifier(m[2]) == r.VerifierHash {
			return disclosed, m[1]
		}
	}
	return "", ""
}

// ---- time as Usher writes it (src/invitation/time.ts, Date.toISOString) ----

func IsoSeconds(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }
func IsoMillis(t time.Time) string  { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// ---- status and conditions (src/invitation/conditions.ts) ----

type Condition struct {
	Type               string `json:"type"`
	Status             string `json:"status"`
	ObservedGeneration *int64 `json:"observedGeneration,omitempty"`
	LastTransitionTime string `json:"lastTransitionTime"`
	Reason             string `json:"reason"`
	Message            string `json:"message"`
}

type Status struct {
	Tenant               string      `json:"tenant"`
	ObservedGeneration   *int64      `json:"observedGeneration,omitempty"`
	LastHandledReissueAt string      `json:"lastHandledReissueAt,omitempty"`
	Phase                string      `json:"phase"`
	Link                 string      `json:"link,omitempty"`
	Issuance             int         `json:"issuance,omitempty"`
	IssuedAt             string      `json:"issuedAt,omitempty"`
	ExpiresAt            string      `json:"expiresAt,omitempty"`
	SentAt               string      `json:"sentAt,omitempty"`
	Conditions           []Condition `json:"conditions"`
}

// Map is the status as the unstructured object holds it.
func (s Status) Map() map[string]any {
	var m map[string]any
	if err := json.Unmarshal(JSONNoEscape(s), &m); err != nil {
		panic(err)
	}
	return m
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

func mergeConditions(existing []Condition, want []desired, generation *int64, now time.Time) []Condition {
	out := make([]Condition, 0, len(want))
	for _, w := range want {
		ltt := IsoSeconds(now)
		for _, had := range existing {
			if had.Type == w.typ && had.Status == w.status {
				ltt = had.LastTransitionTime
			}
		}
		out = append(out, Condition{Type: w.typ, Status: w.status, ObservedGeneration: generation, LastTransitionTime: ltt, Reason: w.reason, Message: w.message})
	}
	return out
}

// Canonical is reconciler.ts's sameStatus: JSON with sorted keys (encoding/json sorts map keys).
func Canonical(v any) string {
	var generic any
	if err := json.Unmarshal(JSONNoEscape(v), &generic); err != nil {
		panic(err)
	}
	return string(JSONNoEscape(generic))
}

// ---- the invitation, read from unstructured ----

type Invitation struct {
	Obj        *unstructured.Unstructured
	Email      string
	Tenant     string
	Scope      string
	Generation *int64
	Prev       Status
	PrevRaw    map[string]any
}

func ReadInvitation(u *unstructured.Unstructured) Invitation {
	inv := Invitation{Obj: u}
	email, _, _ := unstructured.NestedString(u.Object, "spec", "email")
	inv.Email = NormalizeEmail(email)
	inv.Tenant, _, _ = unstructured.NestedString(u.Object, "spec", "tenant")
	inv.Scope, _, _ = unstructured.NestedString(u.Object, "spec", "scope")
	if g := u.GetGeneration(); g != 0 {
		inv.Generation = &g
	}
	raw, _, _ := unstructured.NestedMap(u.Object, "status")
	inv.PrevRaw = raw
	if raw != nil {
		b, _ := json.Marshal(raw)
		_ = json.Unmarshal(b, &inv.Prev)
	}
	return inv
}

// NormalizeEmail for ASCII addresses (email.ts also maps internationalised domains to ASCII; the bench's addresses are ASCII).
func NormalizeEmail(e string) string {
	b := []byte(strings.TrimSpace(e))
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 32
		}
	}
	return string(b)
}

func (inv Invitation) base() Status {
	s := Status{Tenant: inv.Tenant, ObservedGeneration: inv.Generation, LastHandledReissueAt: inv.Prev.LastHandledReissueAt}
	if inv.Scope == "Instance" {
		s.Tenant = "*"
	}
	return s
}

// Held is decide.ts's plan once a token is held: Pending/Sending until the record says sent, then Sent.
func (inv Invitation) Held(cur Record, link string, now time.Time) Status {
	s := inv.base()
	s.Link, s.Issuance, s.IssuedAt, s.ExpiresAt = link, cur.Issuance, cur.IssuedAt, cur.ExpiresAt
	if cur.Mail != nil && cur.Mail.SentAt != "" {
		s.Phase, s.SentAt = "Sent", cur.Mail.SentAt
		want := append(readiness("ready", "Sent", fmt.Sprintf("Invitation mailed to %s at %s; it expires at %s.", inv.Email, cur.Mail.SentAt, cur.ExpiresAt)),
			desired{"MailDelivered", "True", "Sent", fmt.Sprintf("Mailed to %s at %s.", inv.Email, cur.Mail.SentAt)})
		s.Conditions = mergeConditions(inv.Prev.Conditions, want, inv.Generation, now)
		return s
	}
	s.Phase = "Pending"
	want := append(readiness("progressing", "Sending", fmt.Sprintf("Sending the invitation to %s.", inv.Email)),
		desired{"MailDelivered", "Unknown", "Sending", fmt.Sprintf("Sending to %s.", inv.Email)})
	s.Conditions = mergeConditions(inv.Prev.Conditions, want, inv.Generation, now)
	return s
}

// SameStatus: the status the invitation holds already is s (writeStatusIfChanged writes nothing then).
func (inv Invitation) SameStatus(s Status) bool {
	return inv.PrevRaw != nil && Canonical(inv.PrevRaw) == Canonical(s)
}

// ---- SMTP: a pool of five connections ----

type MailPool struct {
	addr, from string
	slots      chan *smtp.Client
}

func NewMailPool(addr, from string, size int) *MailPool {
	p := &MailPool{addr: addr, from: from, slots: make(chan *smtp.Client, size)}
	for i := 0; i < size; i++ {
		p.slots <- nil
	}
	return p
}

// EnvelopeFrom is the address in a From header ("Name <a@b>" → a@b).
func EnvelopeFrom(from string) string {
	if i, j := strings.Index(from, "<"), strings.Index(from, ">"); i >= 0 && j > i {
		return from[i+1 : j]
	}
	return from
}

func (p *MailPool) Send(to string, msg []byte) error {
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

func Message(fromHeader, to, link, expiresAt string) []byte {
	boundary := "usher-peer-" + hex.EncodeToString([]byte(to))[:16]
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: You are invited\r\nDate: %s\r\nMIME-Version: 1.0\r\n", fromHeader, to, time.Now().Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Content-Type: multipart/alternative; boundary=%q\r\n\r\n", boundary)
	fmt.Fprintf(&b, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nYou are invited. Accept the invitation here (until %s):\r\n%s\r\n\r\n", boundary, expiresAt, link)
	fmt.Fprintf(&b, "--%s\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>You are invited.</p><p><a href=\"%s\">Accept the invitation</a> (until %s).</p>\r\n\r\n--%s--\r\n", boundary, link, expiresAt, boundary)
	return []byte(b.String())
}

// ---- process plumbing ----

func Env(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

// Say prints one JSON log line as Usher's operator does (the bench reads "msg").
func Say(msg string, kv ...any) {
	m := map[string]any{"level": 30, "time": time.Now().UnixMilli(), "msg": msg}
	for i := 0; i+1 < len(kv); i += 2 {
		m[fmt.Sprint(kv[i])] = kv[i+1]
	}
	fmt.Println(string(JSONNoEscape(m)))
}

// ReportMemoryOnSignal: on SIGUSR1, a full GC and then a line "memory" with runtime.MemStats
// (heapAlloc: live heap after the GC, the figure the bench sets beside Node's heapUsed).
func ReportMemoryOnSignal() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGUSR1)
	go func() {
		for range ch {
			runtime.GC()
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			Say("memory", "heapAlloc", m.HeapAlloc, "heapInuse", m.HeapInuse, "heapSys", m.HeapSys, "sys", m.Sys, "goroutines", runtime.NumGoroutine())
		}
	}()
}
