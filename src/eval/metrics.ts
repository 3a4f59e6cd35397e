/**
 * Classification metrics for the linear probe and the kNN monitor. Imbalanced sets (HAM10000 is 67 %
 * "nv") make accuracy alone misleading, so balanced accuracy and macro F1 are always reported too.
 */

export interface ClassMetrics {
  name: string;
  precision: number;
  recall: number;
  f1: number;
  /** Number of true items of this class. */
  support: number;
}

export interface ClassificationMetrics {
  accuracy: number;
  /** Mean recall over the classes present in yTrue (scikit-learn's balanced_accuracy_score). */
  balanced_accuracy: number;
  /** Mean F1 over the classes present in yTrue or yPred (scikit-learn's labels = union). */
  macro_f1: number;
  per_class: ClassMetrics[];
  /** confusion_matrix[true][predicted]: counts. */
  confusion_matrix: number[][];
}

/** Ratio with scikit-learn's zero_division=0: an empty denominator scores 0 rather than NaN. */
function safeDiv(num: number, den: number): number {
  return den === 0 ? 0 : num / den;
}

function mean(xs: readonly number[]): number {
  return xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length;
}

export function confusionMatrix(yTrue: Int32Array, yPred: Int32Array, numClasses: number): number[][] {
  if (yTrue.length !== yPred.length) {
    throw new RangeError(`yTrue has ${yTrue.length} items but yPred has ${yPred.length}`);
  }
  const cm = Array.from({ length: numClasses }, () => new Array<number>(numClasses).fill(0));
  for (let i = 0; i < yTrue.length; i++) {
    const t = yTrue[i]!;
    const p = yPred[i]!;
    if (t < 0 || t >= numClasses || p < 0 || p >= numClasses) {
      throw new RangeError(`item ${i}: label ${t} / prediction ${p} outside [0, ${numClasses})`);
    }
    cm[t]![p]!++;
  }
  return cm;
}

export function classificationMetrics(
  yTrue: Int32Array,
  yPred: Int32Array,
  classNames: readonly string[],
): ClassificationMetrics {
  const k = classNames.length;
  const cm = confusionMatrix(yTrue, yPred, k);
  const perClass: ClassMetrics[] = [];
  const presentRecalls: number[] = [];
  const presentF1s: number[] = [];
  let correct = 0;
  for (let c = 0; c < k; c++) {
    const tp = cm[c]![c]!;
    const support = cm[c]!.reduce((a, b) => a + b, 0);
    const predicted = cm.reduce((a, row) => a + row[c]!, 0);
    const precision = safeDiv(tp, predicted);
    const recall = safeDiv(tp, support);
    const f1 = safeDiv(2 * precision * recall, precision + recall);
    perClass.push({ name: classNames[c]!, precision, recall, f1, support });
    correct += tp;
    if (support > 0) presentRecalls.push(recall);
    // A class absent from both yTrue and yPred says nothing about the classifier, so it is left out;
    // one that is predicted but never true counts with F1 = 0 (a real error), as in scikit-learn.
    if (support > 0 || predicted > 0) presentF1s.push(f1);
  }
  return {
    accuracy: safeDiv(correct, yTrue.length),
    balanced_accuracy: mean(presentRecalls),
    macro_f1: mean(presentF1s),
    per_class: perClass,
    confusion_matrix: cm,
  };
}

/** The three headline numbers of a classifier, as tables and model selection use them. */
export interface MetricSummary {
  accuracy: number;
  balanced_accuracy: number;
  macro_f1: number;
}

export const HEADLINE_METRICS = ['accuracy', 'balanced_accuracy', 'macro_f1'] as const;

export function summarizeMetrics(m: MetricSummary): MetricSummary {
  return { accuracy: m.accuracy, balanced_accuracy: m.balanced_accuracy, macro_f1: m.macro_f1 };
}

export interface MeanStd {
  mean: number;
  /** Population standard deviation (numpy's default, ddof 0), as cross-validation tables report it. */
  std: number;
}

export function meanStd(values: readonly number[]): MeanStd {
  const m = mean(values);
  return { mean: m, std: Math.sqrt(mean(values.map((v) => (v - m) ** 2))) };
}
