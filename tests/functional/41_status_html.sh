# status --format html: one self-contained page (no script, no network)
# that headless Chromium renders with every server, its state and the
# File Status Report rows; text from servers and files is escaped.
. "$TOP_SRCDIR/tests/lib.sh"
state_backends
CHROMIUM=/usr/bin/chromium
[ -x "$CHROMIUM" ] || fail "chromium not installed (bootstrap installs it)"

mkdir pat d1 d2
mkfile pat/KB1.msu 3000 1
mkfile 'pat/<script>alert(1)</script>.msu' 100 2
mkfile 'pat/a&b "q".cab' 100 3
console_conf a patches:pat
A="$PS -c a.conf"
expect_exit 0 $A server add alpha "$T/d1"
expect_exit 0 $A server add beta "$T/d2"
expect_exit 0 $A server add gamma "localhost:/srv" --rsh false
expect_exit 0 $A server add delta "$T/d2"
expect_exit 0 $A push alpha
expect_exit 1 $A report beta
expect_exit 4 $A report gamma

expect_exit 0 $A status --format html -o page.html
grep -qi '<script' page.html && fail "the page holds a script element"
grep -Eqi '(src|href)="?(https?:)?//' page.html && fail "the page loads something"

# Render it as a browser does, offline, and read the DOM it built.
mkdir profile
timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic \
    --no-first-run --disable-background-networking \
    --disable-component-update --disable-sync \
    --user-data-dir="$T/profile" --dump-dom "file://$T/page.html" \
    >dom.html 2>chromium.err || fail "chromium: $(tail -3 chromium.err)"
python3 - "$T/dom.html" <<'PY'
import html.parser, sys
class P(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.cells, self.cur, self.tags = [], None, []
    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag in ("td", "th"):
            self.cur = ""
    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cur is not None:
            self.cells.append(self.cur)
            self.cur = None
    def handle_data(self, d):
        if self.cur is not None:
            self.cur += d
p = P()
p.feed(open(sys.argv[1], encoding="utf-8").read())
rows = {}
cells = p.cells
for i, c in enumerate(cells):
    if c in ("alpha", "beta", "gamma", "delta") and i + 2 < len(cells):
        rows.setdefault(c, cells[i + 2])
want = {"alpha": "current", "beta": "behind", "gamma": "unreachable",
        "delta": "never synced"}
for s, st in want.items():
    if rows.get(s) != st:
        sys.exit("server %s: state %r, expected %r" % (s, rows.get(s), st))
if "script" in p.tags:
    sys.exit("a script element was built")
for f in ("KB1.msu", "<script>alert(1)</script>.msu", 'a&b "q".cab'):
    if f not in cells:
        sys.exit("report row %r not shown as text" % f)
PY
echo ok
