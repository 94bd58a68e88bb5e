import 'reflect-metadata';
import { Body, Controller, HttpCode, Module, Post } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { useJsonBodyChecks } from './bootstrap';

@Controller()
class EchoController {
  received: unknown[] = [];

  @Post('echo')
  @HttpCode(200)
  echo(@Body() body: unknown): unknown {
    this.received.push(body);
    return body;
  }
}

@Module({ controllers: [EchoController] })
class EchoModule {}

describe('useJsonBodyChecks', () => {
  let app: NestExpressApplication;
  let url: string;

  beforeAll(async () => {
    app = await NestFactory.create<NestExpressApplication>(EchoModule, { logger: false });
    useJsonBodyChecks(app);
    await app.listen(0, '127.0.0.1');
    url = `${await app.getUrl()}/echo`;
  });
  afterAll(() => app.close());

  const post = (body: Buffer | string) =>
    fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });

  it('passes a well-formed body to the handler', async () => {
    const res = await post(JSON.stringify({ reason: 'ok 😀', n: [1, 2] }));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ reason: 'ok 😀', n: [1, 2] });
  });

  it('refuses bytes that are not UTF-8 instead of acting on U+FFFD replacements', async () => {
    const before = app.get(EchoController).received.length;
    const res = await post(
      Buffer.concat([Buffer.from('{"reason":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]),
    );
    expect(res.status).toBe(400);
    expect(((await res.json()) as { message: string }).message).toMatch(/not UTF-8/);
    expect(app.get(EchoController).received).toHaveLength(before);
  });

  it('refuses a string storage cannot hold, naming the field, at any depth', async () => {
    const before = app.get(EchoController).received.length;
    const res = await post('{"outer": {"reason": "a\\ud800b"}}');
    expect(res.status).toBe(400);
    expect(((await res.json()) as { message: string }).message).toMatch(
      /outer\.reason: contains an unpaired UTF-16 surrogate/,
    );
    expect(app.get(EchoController).received).toHaveLength(before);
  });

  it('keeps a paired surrogate (an emoji written as escapes)', async () => {
    const res = await post('{"reason": "\\ud83d\\ude00"}');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ reason: '😀' });
  });
});
