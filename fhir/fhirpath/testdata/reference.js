// Evaluates FHIRPath expressions with HL7's reference implementation
// (npm "fhirpath", R4 model) for the differential test in
// ../differential_test.go.
//
// Usage: node reference.js <node_modules dir> <pairs.json>
// pairs.json is a JSON array of {"file": <JSON resource path>, "expression": <FHIRPath>}.
// Prints a JSON array with, for each pair, {"result": [...], "types": [...]}
// or {"error": "..."}, plus "rewritten": true when the expression was evaluated
// with "X as T" replaced by "X.ofType(T)" (see below).
//
// Two functions are replaced for the comparison, because the test compares
// search semantics that need no server:
//   - resolve(): fhirpath.js's resolve() is asynchronous and fetches from a
//     FHIR server. Here it returns, like the Go package, the contained
//     resource ("#id") or Bundle entry (by fullUrl) of the evaluated
//     resource, else a placeholder {resourceType, id} taken from the
//     reference text or from Reference.type.
//   - hasExtension(url), which fhirpath.js does not implement.
// When the reference implementation rejects "as" on more than one item
// ("Expected singleton on left side of 'as'"), the expression is evaluated
// again with "as T" / ".as(T)" replaced by ".ofType(T)", which is what the
// Go package does for search.
'use strict';
const fs = require('fs');
const path = require('path');
const {createRequire} = require('module');

const [nodeModules, pairsFile] = process.argv.slice(2);
const req = createRequire(path.join(path.resolve(nodeModules), 'noop.js'));
const fhirpath = req('fhirpath');
const r4 = req('fhirpath/fhir-context/r4');
// Same module instance as the one fhirpath uses internally.
const {ResourceNode} = req(path.join(path.dirname(req.resolve('fhirpath')), 'types.js'));

let currentResource = null;

function refTarget(ref, type) {
  const root = currentResource;
  if (typeof ref === 'string' && ref.startsWith('#') && root && Array.isArray(root.contained)) {
    const c = root.contained.find(x => x && x.id === ref.slice(1));
    if (c) return c;
  }
  if (ref && root && root.resourceType === 'Bundle' && Array.isArray(root.entry)) {
    const e = root.entry.find(x => x && x.fullUrl === ref);
    if (e && e.resource) return e.resource;
  }
  if (typeof ref === 'string' && ref) {
    const m = /(?:^|\/)([A-Z][A-Za-z]+)(?:\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/[^/]+)?|\?.*)$/.exec(ref.split('#')[0]);
    if (m) return m[2] ? {resourceType: m[1], id: m[2]} : {resourceType: m[1]};
  }
  return type ? {resourceType: type} : null;
}

const userInvocationTable = {
  resolve: {
    fn: function (coll) {
      const out = [];
      for (const item of coll || []) {
        const d = fhirpath.util.valData(item);
        let t = null;
        if (d && typeof d === 'object') t = refTarget(d.reference, d.type);
        else if (typeof d === 'string') t = refTarget(d, null);
        if (t) out.push(ResourceNode.makeResNode(this, t, null, null, null, null));
      }
      return out;
    },
  },
  hasExtension: {
    fn: function (coll, url) {
      return coll.some(item => {
        const d = fhirpath.util.valData(item);
        const exts = (d && typeof d === 'object' ? d.extension : item && item._data && item._data.extension) || [];
        return exts.some(e => e && e.url === url);
      });
    },
    arity: {1: ['String']},
  },
};

const options = {userInvocationTable, resolveInternalTypes: false};
const compiled = new Map();
function compile(expr) {
  let c = compiled.get(expr);
  if (!c) {
    try {
      c = {fn: fhirpath.compile(expr, r4, options)};
    } catch (e) {
      c = {error: String(e.message || e)};
    }
    compiled.set(expr, c);
  }
  return c;
}

// run returns {result, types}: the values as plain JSON and their FHIRPath
// type names ("FHIR.Quantity", "System.Boolean", ...).
function run(resource, expr) {
  const c = compile(expr);
  if (c.error) throw new Error(c.error);
  const raw = c.fn(resource);
  return {types: fhirpath.types(raw), result: fhirpath.resolveInternalTypes(raw)};
}

const pairs = JSON.parse(fs.readFileSync(pairsFile, 'utf8'));
const resources = new Map();
const out = [];
for (const {file, expression} of pairs) {
  let res = resources.get(file);
  if (!res) {
    res = JSON.parse(fs.readFileSync(file, 'utf8'));
    resources.set(file, res);
  }
  currentResource = res;
  try {
    out.push(run(res, expression));
  } catch (e) {
    const msg = String(e.message || e);
    if (/Expected singleton on left side of 'as'/.test(msg)) {
      const rewritten = expression
        .replace(/\s+as\s+([A-Za-z][A-Za-z0-9_.]*)/g, '.ofType($1)')
        .replace(/\.as\(/g, '.ofType(');
      try {
        out.push({...run(res, rewritten), rewritten: true});
      } catch (e2) {
        out.push({error: String(e2.message || e2), rewritten: true});
      }
    } else {
      out.push({error: msg});
    }
  }
}
process.stdout.write(JSON.stringify(out));
