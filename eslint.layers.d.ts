// Types of eslint.layers.js, for the test that lints against it.
import type { Linter } from 'eslint';

export declare const layers: Linter.Config[];
