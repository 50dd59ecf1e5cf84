// The --seeds list as given: nothing to resolve here (the HTTP client resolves any names).

import type { Candidates, Discovery } from './discovery';

export class StaticDiscovery implements Discovery {
  readonly name = 'static';
  private readonly seeds: readonly string[];

  constructor(seeds: string[]) {
    this.seeds = [...seeds];
  }

  async candidates(): Promise<Candidates> {
    return { addresses: [...this.seeds], problems: [] };
  }
}
