// End-to-end check with a real FHIR client library (npm fhir-kit-client, an
// ES module): node fhirkit.mjs BASE_URL NODE_MODULES. Prints {"ok":true} at
// the end; exits non-zero on the first failed expectation.
import path from 'node:path';

const [base, modules] = process.argv.slice(2);
const { Client } = await import(path.join(modules, 'fhir-kit-client', 'dist', 'index.js'));
const client = new Client({ baseUrl: base });

function expect(cond, msg) {
  if (!cond) {
    console.error('FAIL: ' + msg);
    process.exit(1);
  }
}

await (async () => {
  const meta = await client.capabilityStatement();
  expect(meta.resourceType === 'CapabilityStatement' && meta.fhirVersion === '4.0.1', 'capability statement');

  const created = await client.create({
    resourceType: 'Patient',
    body: {
      resourceType: 'Patient',
      identifier: [{ system: 'http://fmtbank.org/recipient-code', value: 'R-KIT-1' }],
      name: [{ text: '赵六' }],
    },
  });
  expect(created.id && created.meta.versionId === '1', 'create: ' + JSON.stringify(created));

  const read = await client.read({ resourceType: 'Patient', id: created.id });
  expect(read.name[0].text === '赵六', 'read keeps Chinese text');

  read.active = true;
  const updated = await client.update({ resourceType: 'Patient', id: created.id, body: read });
  expect(updated.meta.versionId === '2' && updated.active === true, 'update');

  const v1 = await client.vread({ resourceType: 'Patient', id: created.id, version: '1' });
  expect(v1.active === undefined, 'vread of version 1');

  const patched = await client.patch({
    resourceType: 'Patient', id: created.id,
    jsonPatch: [{ op: 'add', path: '/gender', value: 'female' }],
  });
  expect(patched.gender === 'female' && patched.meta.versionId === '3', 'patch');

  const found = await client.search({
    resourceType: 'Patient',
    searchParams: { identifier: 'http://fmtbank.org/recipient-code|R-KIT-1' },
  });
  expect(found.resourceType === 'Bundle' && found.total === 1 && found.entry[0].resource.id === created.id, 'search');

  const history = await client.history({ resourceType: 'Patient', id: created.id });
  expect(history.type === 'history' && history.entry.length === 3, 'history has 3 versions');

  // Paging through history with the client's own nextPage.
  for (let i = 0; i < 4; i++) {
    await client.create({ resourceType: 'Observation', body: { resourceType: 'Observation', status: 'final', code: { text: 'qc ' + i } } });
  }
  let page = await client.request('Observation/_history?_count=2');
  let seen = page.entry.length;
  while ((page = await client.nextPage({ bundle: page }))) {
    seen += page.entry.length;
  }
  expect(seen === 4, 'paged history saw ' + seen + ' of 4');

  await client.delete({ resourceType: 'Patient', id: created.id });
  try {
    await client.read({ resourceType: 'Patient', id: created.id });
    expect(false, 'read after delete should fail');
  } catch (e) {
    expect(e.response && e.response.status === 410, 'read after delete is 410, got ' + (e.response && e.response.status));
    const data = typeof e.response.data === 'string' ? JSON.parse(e.response.data) : e.response.data;
    expect(data.resourceType === 'OperationOutcome', 'error body is an OperationOutcome');
  }

  try {
    await client.update({ resourceType: 'Patient', id: 'x1', body: { resourceType: 'Patient', id: 'x1', active: 'yes' } });
    expect(false, 'invalid update should fail');
  } catch (e) {
    expect(e.response && e.response.status === 400, 'invalid resource is 400');
  }
  // A transaction: a recipient, a procedure on them and an adverse event
  // suspecting the procedure, linked by urn:uuid fullUrls.
  const tx = await client.transaction({
    body: {
      resourceType: 'Bundle', type: 'transaction',
      entry: [
        { fullUrl: 'urn:uuid:7f0c1d2e-0000-4000-8000-000000000001',
          resource: { resourceType: 'Patient', identifier: [{ system: 'http://fmtbank.org/fhir/sid/recipient-code', value: 'R-KIT-TX' }] },
          request: { method: 'POST', url: 'Patient', ifNoneExist: 'identifier=http://fmtbank.org/fhir/sid/recipient-code|R-KIT-TX' } },
        { fullUrl: 'urn:uuid:7f0c1d2e-0000-4000-8000-000000000002',
          resource: { resourceType: 'Procedure', status: 'completed', subject: { reference: 'urn:uuid:7f0c1d2e-0000-4000-8000-000000000001' } },
          request: { method: 'POST', url: 'Procedure' } },
        { resource: { resourceType: 'AdverseEvent', actuality: 'actual', subject: { reference: 'urn:uuid:7f0c1d2e-0000-4000-8000-000000000001' },
            suspectEntity: [{ instance: { reference: 'urn:uuid:7f0c1d2e-0000-4000-8000-000000000002' } }] },
          request: { method: 'POST', url: 'AdverseEvent' } },
      ],
    },
  });
  expect(tx.type === 'transaction-response' && tx.entry.length === 3 && tx.entry.every((e) => e.response.status.startsWith('201')),
    'transaction: ' + JSON.stringify(tx.entry && tx.entry.map((e) => e.response)));
  const patientRef = tx.entry[0].response.location.split('/_history')[0];
  const ae = await client.read({ resourceType: 'AdverseEvent', id: tx.entry[2].response.location.split('/')[1] });
  expect(ae.subject.reference === patientRef, 'transaction rewrote urn:uuid to ' + ae.subject.reference);

  // A batch: one entry fails, the others do not.
  const batch = await client.batch({
    body: {
      resourceType: 'Bundle', type: 'batch',
      entry: [
        { request: { method: 'GET', url: patientRef } },
        { request: { method: 'DELETE', url: 'Patient/no-such-patient' } },
        { resource: { resourceType: 'Patient', id: 'kit-batch' }, request: { method: 'PUT', url: 'Patient/kit-batch' } },
      ],
    },
  });
  const statuses = batch.entry.map((e) => e.response.status.split(' ')[0]).join(',');
  expect(batch.type === 'batch-response' && statuses === '200,404,201', 'batch statuses ' + statuses);

  console.log(JSON.stringify({ ok: true, id: created.id }));
})().catch((e) => {
  console.error('FAIL: ' + (e.stack || e) + (e.response ? ' ' + JSON.stringify(e.response.data) : ''));
  process.exit(1);
});
