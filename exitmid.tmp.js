const { Context, ElmanRNN } = require('./lib/index.ts');
(async () => {
  const ctx = new Context();
  const m = await ElmanRNN.create({ inputSize: 4, hiddenSize: 512, outputSize: 4, context: ctx });
  const x = ctx.randn([400, 32, 4]);
  const targets = ctx.zeros([400, 32], { dtype: 'int32' });
  for (let i = 0; i < 3; i++) m.lossAndGradients({ x, targets });
  setTimeout(() => { console.log('exiting'); process.exit(0); }, 150);
})();
