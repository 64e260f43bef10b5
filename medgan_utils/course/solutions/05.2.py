strong = train_segmenter((train.images, train.masks), seeds[0], lambda_adv=10.0)
plain_dice = next(r["val_dice"] for r in runs if (r["arm"], r["fraction"], r["seed"]) == ("unet", max(fractions), seeds[0]))
print(f"validation Dice: U-Net {plain_dice:.3f}, lambda = 10: {strong.best['score']:.3f} "
      f"(best at update {strong.best['step']} of {seg_steps})")
pred = binarise(strong.predict(val.images[:8]))
fig, ax = plt.subplots(figsize=(11, 3.4))
show_grid(torch.cat([val.images[:8], val.masks[:8] * 2 - 1, pred * 2 - 1]), nrow=8, ax=ax,
          title=f"validation cases, λ = 10 segmenter (seed {seeds[0]})",
          row_labels=["image", "true mask", "λ = 10 mask"])
plt.show()
quiz_05_2 = "b"
