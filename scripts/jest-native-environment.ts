/**
 * Jest global set-up: the environment the native kernels' C libraries read when they load
 * (OMP_WAIT_POLICY, OPENBLAS_CORETYPE — see prepareNativeEnvironment), set in Jest's parent
 * process so that the worker processes inherit it. Why here: a test file's `process.env` is a
 * per-file copy, so the loader's own assignment never reached the real environment under Jest —
 * the specs ran OpenBLAS's SSE3 fallback kernels and spinning OpenMP threads, unlike production.
 */
import { prepareNativeEnvironment } from '../libs/lm/src/kernels/native-addon';

export default function setUpNativeEnvironment(): void {
  prepareNativeEnvironment();
}
