// Integration tests drive real servers and processes: minutes, not the unit tier's 5 s default.
jest.setTimeout(240_000);
