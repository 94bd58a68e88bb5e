import { createHash } from 'node:crypto';
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { manifestDigest } from './digest';
import { LocalArtefactStore } from './local-store';
import { ArtefactConflictError, ArtefactIntegrityError, ArtefactNotFoundError } from './store';

let dir: string;
let store: LocalArtefactStore;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'cprec-artefacts-'));
  store = new LocalArtefactStore(join(dir, 'store'), () => 1_700_000_000_000);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const sha = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');

function adapterDir(name = 'src'): string {
  const d = join(dir, name);
  mkdirSync(join(d, 'nested'), { recursive: true });
  writeFileSync(join(d, 'adapter.safetensors'), Buffer.from([1, 2, 3, 4, 5]));
  writeFileSync(join(d, 'adapter.json'), '{"rank":2}\n');
  writeFileSync(join(d, 'nested', 'state.json'), '{"step":7}\n');
  return d;
}

describe('LocalArtefactStore', () => {
  it('stores a file with its sha256 and a file:// URI that leads to the same bytes', async () => {
    const src = join(dir, 'model.bin');
    writeFileSync(src, 'weights');
    const record = await store.put('models/base.bin', src, { metadata: { note: 'x' } });
    expect(record).toMatchObject({ kind: 'file', sha256: sha('weights'), bytes: 7, metadata: { note: 'x' } });
    expect(record.uri.startsWith('file:///')).toBe(true);
    const path = await store.localPath('models/base.bin');
    expect(fileURLToPath(record.uri)).toBe(path);
    expect(readFileSync(path, 'utf8')).toBe('weights');
    expect(store.keyOfUri(record.uri)).toBe('models/base.bin');
    expect(store.keyOfUri('file:///elsewhere/@content')).toBeNull();
  });

  it('stores a directory under a manifest digest that pins every path and content', async () => {
    const record = await store.put('rounds/r1/adapter', adapterDir());
    expect(record.kind).toBe('directory');
    expect(record.files.map((f) => f.path)).toEqual([
      'adapter.json',
      'adapter.safetensors',
      'nested/state.json',
    ]);
    expect(record.files[2]).toEqual({ path: 'nested/state.json', bytes: 11, sha256: sha('{"step":7}\n') });
    const expectedDigest = sha(record.files.map((f) => `${f.sha256}  ${f.bytes}  ${f.path}\n`).join(''));
    expect(record.sha256).toBe(expectedDigest);
    expect(manifestDigest(record.files)).toBe(expectedDigest);
    const path = await store.localPath('rounds/r1/adapter');
    expect(readFileSync(join(path, 'nested', 'state.json'), 'utf8')).toBe('{"step":7}\n');
    // The same directory elsewhere has the same digest (paths are relative).
    const again = await store.put('rounds/r2/adapter', adapterDir('copy'));
    expect(again.sha256).toBe(record.sha256);
  });

  it('refuses a corrupted artefact on read, naming what changed', async () => {
    await store.put('a/adapter', adapterDir());
    const path = await store.localPath('a/adapter');
    appendFileSync(join(path, 'adapter.safetensors'), Buffer.from([0]));
    await expect(store.localPath('a/adapter')).rejects.toThrow(ArtefactIntegrityError);
    await expect(store.verify('a/adapter')).rejects.toThrow(
      /file adapter\.safetensors has sha256 .* \(6 bytes\), recorded .* \(5 bytes\)/,
    );
  });

  it('refuses a directory artefact with a missing or an extra file, and a bit-flipped file artefact', async () => {
    await store.put('m', adapterDir());
    const path = await store.localPath('m');
    rmSync(join(path, 'nested', 'state.json'));
    writeFileSync(join(path, 'intruder.txt'), 'x');
    await expect(store.verify('m')).rejects.toThrow(
      /file nested\/state\.json is missing; unexpected file intruder\.txt/,
    );

    const src = join(dir, 'f.bin');
    writeFileSync(src, Buffer.from([10, 20, 30]));
    await store.put('f', src);
    writeFileSync(await store.localPath('f'), Buffer.from([10, 21, 30])); // same size, one byte changed
    await expect(store.localPath('f')).rejects.toThrow(
      /artefact "f" is corrupted and was refused: the file has sha256/,
    );
  });

  it('is immutable: the same content again is a no-op, different content under the key is refused', async () => {
    const first = await store.put('k', adapterDir());
    const same = await store.put('k', adapterDir('same'));
    expect(same).toEqual(first);
    const other = adapterDir('other');
    writeFileSync(join(other, 'adapter.json'), '{"rank":4}\n');
    await expect(store.put('k', other)).rejects.toBeInstanceOf(ArtefactConflictError);
    expect(JSON.parse(readFileSync(join(await store.localPath('k'), 'adapter.json'), 'utf8'))).toEqual({
      rank: 2,
    });
  });

  it('leaves nothing visible when a put fails, and clears an orphan left by a crashed put', async () => {
    await expect(store.put('x', join(dir, 'does-not-exist'))).rejects.toThrow();
    expect(await store.stat('x')).toBeNull();
    expect(readdirSync(join(store.root, '.staging'))).toEqual([]);

    // A crash after the content rename but before the record: content without record.
    mkdirSync(join(store.root, 'y', '@content'), { recursive: true });
    writeFileSync(join(store.root, 'y', '@content', 'junk'), 'half');
    expect(await store.stat('y')).toBeNull();
    await expect(store.localPath('y')).rejects.toBeInstanceOf(ArtefactNotFoundError);
    await store.put('y', adapterDir());
    expect(existsSync(join(await store.localPath('y'), 'junk'))).toBe(false);
  });

  it('lists records by key prefix, including keys nested under other keys', async () => {
    await store.put('trunks/r1', adapterDir());
    await store.put('trunks/r1/extra', adapterDir('e'));
    await store.put('adapters/r1-cpt', adapterDir('a'));
    expect((await store.list()).map((r) => r.key)).toEqual([
      'adapters/r1-cpt',
      'trunks/r1',
      'trunks/r1/extra',
    ]);
    expect((await store.list('trunks/')).map((r) => r.key)).toEqual(['trunks/r1', 'trunks/r1/extra']);
    expect(await new LocalArtefactStore(join(dir, 'empty')).list()).toEqual([]);
  });

  it('rejects keys that could escape the store or clash with its own files', async () => {
    for (const bad of ['', '../x', 'a/../b', '/abs', 'a//b', '.hidden', 'a/@content', 'sp ace']) {
      await expect(store.put(bad, adapterDir(`b${Math.random()}`))).rejects.toThrow(
        /artefact key .* is invalid/,
      );
    }
  });
});
