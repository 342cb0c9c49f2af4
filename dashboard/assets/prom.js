// Reading the Prometheus text exposition format, and what the overview
// computes from two scrapes: rates of counters and quantiles of histograms.

const lineRe = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const labelRe = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

// parse returns the samples of a scrape: [{name, labels, value}].
export function parse(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line[0] === '#') continue;
    const m = line.match(lineRe);
    if (!m) continue;
    const labels = {};
    if (m[2]) {
      for (const l of m[2].matchAll(labelRe)) {
        labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
      }
    }
    out.push({ name: m[1], labels, value: parseValue(m[3]) });
  }
  return out;
}

function parseValue(s) {
  if (s === '+Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  return Number(s);
}

// sum adds up the samples of a metric whose labels pass match; it returns
// null when the scrape has no such sample.
export function sum(samples, name, match = () => true) {
  let total = null;
  for (const x of samples) {
    if (x.name === name && match(x.labels)) total = (total || 0) + x.value;
  }
  return total;
}

// buckets is a histogram's cumulative counts by upper bound, summed over
// its other labels: [[le, count]...] sorted by le.
export function buckets(samples, name) {
  const byLe = new Map();
  for (const x of samples) {
    if (x.name !== name + '_bucket') continue;
    const le = parseValue(x.labels.le);
    byLe.set(le, (byLe.get(le) || 0) + x.value);
  }
  return [...byLe.entries()].sort((a, b) => a[0] - b[0]);
}

// delta subtracts an earlier scrape's buckets from a later one's: the
// observations made between the two.
export function delta(now, before) {
  const prev = new Map(before);
  return now.map(([le, n]) => [le, Math.max(0, n - (prev.get(le) || 0))]);
}

// quantile estimates the q-quantile from cumulative buckets as Prometheus'
// histogram_quantile does: linear within the bucket holding the rank, and
// the highest finite bound when the rank falls in +Inf. It returns null
// with no observation.
export function quantile(q, bs) {
  if (!bs.length) return null;
  const total = bs[bs.length - 1][1];
  if (!total) return null;
  const rank = q * total;
  let prevLe = 0, prevN = 0;
  for (const [le, n] of bs) {
    if (n >= rank) {
      if (le === Infinity) return prevLe;
      if (n === prevN) return le;
      return prevLe + (le - prevLe) * (rank - prevN) / (n - prevN);
    }
    prevLe = le; prevN = n;
  }
  return prevLe;
}
